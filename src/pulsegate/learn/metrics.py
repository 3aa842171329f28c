"""What an endpoint model measures: the metrics of a request, the log scale each is
modelled on, their spread floors, and the verdict on one request
(:class:`EndpointScore`)."""

from __future__ import annotations

import math
from typing import NamedTuple

#: The metrics of a request, in the order :meth:`EndpointModel.update` (and
#: ``observe``) take them; :class:`pulsegate.scoring.MetricValues` lays a request's
#: values out in this order.
#: Latency and CPU come first: a request that ran no SQL on an endpoint that never has
#: (:attr:`EndpointModel.queried` false) is fully described by that prefix.
METRICS = ("latency", "cpu", "queries", "query_time", "repeat_share", "memory")
#: The metrics that are zero for a request without SQL.
QUERY_METRICS = frozenset({"queries", "query_time", "repeat_share"})

# Spread floors in log space: about 5 % for times, 10 % for counts, and a wide one for
# the allocation delta, which is noisy by nature.
FLOORS = {"latency": 0.05, "cpu": 0.05, "memory": 0.5, "queries": 0.1, "query_time": 0.05,
          # repeat_share: log1p of the share of query time in repeated shapes (0..0.69)
          "repeat_share": 0.05}

#: The smallest rise, in each metric's own unit, that may ever count as anomalous: a
#: 40 µs endpoint taking 200 µs is five times slower but nobody's problem. The floor of
#: the spread is widened so that a rise of exactly this much sits at the threshold.
MIN_EXCESS = {"latency": 1.0, "cpu": 1.0, "query_time": 1.0, "queries": 2.0,
              "repeat_share": 0.1}

#: Learned for trends (leaks), not scored per request.
TREND_ONLY = frozenset({"memory"})

_log = math.log
_log1p = math.log1p
_exp = math.exp


def transform(metric: str, x: float) -> float:
    """The log scale each metric is modelled on."""
    if metric == "latency":
        return _log(x if x > 1e-3 else 1e-3)
    if metric == "memory":
        return _log1p(x) if x >= 0 else -_log1p(-x)
    return _log1p(x if x > 0 else 0.0)


class EndpointScore(NamedTuple):
    """The verdict on one request of one endpoint.

    ``score`` is the largest per-metric score, ``driver`` the metric that gave it;
    ``confidence`` and the latency forecast/interval come from the latency metric,
    converted back from log space: ``predicted_ms = e^f``, interval ``e^{f ± kσ}``
    (``low_ms``/``high_ms``, derived from ``spread = kσ`` only when read).
    """

    score: float
    is_anomaly: bool
    driver: str | None
    confidence: float
    predicted_ms: float | None
    #: kσ of log latency: the half-width of the forecast interval in log space.
    spread: float
    latency_z: float

    @property
    def low_ms(self) -> float | None:
        p = self.predicted_ms
        return None if p is None else p * _exp(-self.spread)

    @property
    def high_ms(self) -> float | None:
        p = self.predicted_ms
        return None if p is None else p * _exp(self.spread)


NO_SCORE = EndpointScore(0.0, False, None, 0.0, None, 0.0, 0.0)
