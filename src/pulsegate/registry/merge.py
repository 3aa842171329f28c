r"""Combining per-worker statistics into one fleet baseline (Chan et al.'s parallel merge).

Each worker keeps, per metric, a count :math:`n`, a mean :math:`\bar x` and the sum of
squared deviations :math:`M_2`. Two such summaries combine exactly:

.. math::

    n = n_a + n_b,\quad \delta = \bar x_b - \bar x_a,\quad
    \bar x = \bar x_a + \delta\,\frac{n_b}{n},\quad
    M_2 = M_{2,a} + M_{2,b} + \delta^2\,\frac{n_a n_b}{n}

(Chan, Golub and LeVeque, 1979), so the order of merging does not matter and merging
the halves of a sample gives the statistics of the whole sample.

An :class:`~pulsegate.learn.endpoint.EndpointModel` keeps an exponentially smoothed
level and mean-square residual per metric instead of a plain mean and variance; the
worker's summary for the merge is ``(w, level, var·w)`` where ``w`` is the number of
requests the worker itself observed since it was seeded (``own``), so knowledge a
worker inherited from the fleet at start is not counted twice. The merged variance
:math:`M_2/n` then includes the spread *between* workers' levels, which is what a
request routed to any worker will see.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

Moments = tuple[float, float, float]


def welford(values: Iterable[float]) -> Moments:
    """(count, mean, M2) of ``values`` in one pass (Welford's update)."""
    n, mean, m2 = 0.0, 0.0, 0.0
    for x in values:
        n += 1
        d = x - mean
        mean += d / n
        m2 += d * (x - mean)
    return n, mean, m2


def chan_merge(parts: Iterable[Moments]) -> Moments:
    """Merge (count, mean, M2) summaries; empty parts are ignored."""
    n, mean, m2 = 0.0, 0.0, 0.0
    for nb, mb, m2b in parts:
        if nb <= 0:
            continue
        if n == 0:
            n, mean, m2 = float(nb), float(mb), float(m2b)
            continue
        tot = n + nb
        d = mb - mean
        mean += d * nb / tot
        m2 += m2b + d * d * n * nb / tot
        n = tot
    return n, mean, m2


def merge_endpoint_states(rows: Sequence[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """One EndpointModel state from several workers' ``(state, own)`` rows.

    A single row is returned unchanged (a restart of one process is exact). Otherwise
    the heaviest worker's state is the template (so fields this module does not know,
    such as the incident model, come from the best-informed worker) and ``level`` /
    ``var`` of each metric are replaced by the Chan merge weighted by ``own``; when no
    worker has observed anything of its own, the workers' counts ``n`` weigh instead.
    """
    if not rows:
        raise ValueError("nothing to merge")
    if len(rows) == 1:
        return rows[0][0]
    weights = [max(0.0, float(own)) for _, own in rows]
    if sum(weights) <= 0:
        weights = [max(0.0, float(s.get("n", 0))) for s, _ in rows]
    heaviest = max(range(len(rows)), key=lambda i: weights[i])
    out = copy.deepcopy(rows[heaviest][0])
    names = list(out["metrics"])
    level, var = list(out["level"]), list(out["var"])
    for i, metric in enumerate(names):
        parts: list[Moments] = []
        for (state, _), w in zip(rows, weights, strict=True):
            try:
                j = list(state["metrics"]).index(metric)
            except ValueError:
                continue
            parts.append((w, float(state["level"][j]), float(state["var"][j]) * w))
        n, mean, m2 = chan_merge(parts)
        if n > 0:
            level[i], var[i] = mean, m2 / n
    out["level"], out["var"] = level, var
    out["n"] = int(max(max(int(s.get("n", 0)) for s, _ in rows), sum(weights)))
    return out
