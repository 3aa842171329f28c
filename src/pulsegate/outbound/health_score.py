r"""An upstream's health score, and the choice among equivalent upstreams.

The latency part is read off the upstream's own model -- the ``EndpointModel`` of its
unit ``UPSTREAM <upstream>`` in the gate's baselines (:mod:`pulsegate.units`), the
model every endpoint has -- so nothing here is a second latency model:

* :math:`\ell`: the model's smoothed log latency (its level, exponential smoothing
  with :math:`\alpha` = ``alpha``, 0.3 by default, per call);
* :math:`b`: the baseline of its incident detector (log ms, learnt over windows with a
  time constant of an hour; :math:`b = \ell` until its first window closed).

The success part is one float per upstream, :math:`S \leftarrow S + \beta\,(o - S)`
per call with :math:`o = 1` for a success (a response below 500) and 0 for a 5xx, an
error or a timeout, :math:`\beta` = :data:`SUCCESS_BETA`; :math:`S = 1` before any call.

.. math::

   H = S \cdot \min\bigl(1,\ e^{\,b - \ell}\bigr)

so :math:`H = 1` for an upstream answering as usual; an upstream twice as slow as its
baseline scores :math:`0.5\,S`; one failing half its calls about :math:`0.5`. An
upstream not called for :math:`\Delta t` seconds drifts back towards full health,

.. math:: H_{\Delta t} = 1 - (1 - H)\, 2^{-\Delta t / t_{1/2}}

(:math:`t_{1/2}` = ``outbound_health_halflife``, 30 s by default), so a host that was
dropped is tried again once it may have recovered.

:func:`pick` returns the healthiest of several candidates: highest
:math:`H_{\Delta t}`; among those within :data:`TIE` of the best, the lowest smoothed
latency :math:`e^{\ell}`; a candidate never called comes first (it must be measured to
be compared).

>>> round(health(1.0, math.log(100.0), math.log(100.0)), 3)
1.0
>>> round(health(0.9, math.log(200.0), math.log(100.0)), 3)
0.45
>>> round(recovered(0.4, 30.0, 30.0), 3)
0.7
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["SUCCESS_BETA", "TIE", "health", "pick", "recovered"]

SUCCESS_BETA = 0.1
TIE = 0.05


def health(success: float, level: float, baseline: float) -> float:
    """:math:`H = S\\cdot\\min(1, e^{b-\\ell})` (log-ms ``level`` and ``baseline``)."""
    return success * min(1.0, math.exp(min(0.0, baseline - level)))


def recovered(h: float, idle_seconds: float, halflife: float) -> float:
    """Health after ``idle_seconds`` without a call: back half way per ``halflife``."""
    if idle_seconds <= 0:
        return h
    return float(1.0 - (1.0 - h) * 2.0 ** (-idle_seconds / halflife))


def pick(candidates: Sequence[tuple[str, float | None, float | None]]) -> int:
    """Index of the candidate to use among ``(name, health, latency_ms)`` triples
    (``health`` None: never called). Ties within :data:`TIE` go to the faster."""
    if not candidates:
        raise ValueError("pick_upstream needs at least one candidate")
    for i, (_, h, _) in enumerate(candidates):
        if h is None:
            return i
    best = max(h for _, h, _ in candidates if h is not None)
    close = [(lat if lat is not None else 0.0, i) for i, (_, h, lat) in enumerate(candidates)
             if h is not None and h >= best - TIE]
    return min(close)[1]
