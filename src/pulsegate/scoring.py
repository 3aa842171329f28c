"""What the endpoint models are fed: which metrics a gate learns, and one request's
values of them on the models' scales.

Every metric but latency is optional (``query_analysis``, ``measure_cpu``,
``measure_memory``); a gate's :class:`MetricValues` knows which it has and lays a
request's measurements out in the order :meth:`EndpointModel.update
<pulsegate.learn.endpoint.EndpointModel.update>` reads them.
"""

from __future__ import annotations

import math

from pulsegate.learn.metrics import METRICS, QUERY_METRICS

_log1p = math.log1p


def metric_set(query_analysis: bool, measure_cpu: bool, measure_memory: bool) -> tuple[str, ...]:
    """The metrics a gate learns, in :data:`~pulsegate.learn.metrics.METRICS` order.

    >>> metric_set(False, True, False)
    ('latency', 'cpu')
    """
    left_out: set[str] = set()
    if not query_analysis:
        left_out |= QUERY_METRICS
    if not measure_cpu:
        left_out.add("cpu")
    if not measure_memory:
        left_out.add("memory")
    return tuple(m for m in METRICS if m not in left_out)


def log_ms(seconds: float) -> float:
    """A duration on the models' latency scale: the log of its milliseconds, floored at
    1 µs (a clock that did not move).

    >>> round(log_ms(1.0), 4), log_ms(0.0) == math.log(1e-3)
    (6.9078, True)
    """
    ms = seconds * 1000.0
    return math.log(ms if ms > 1e-3 else 1e-3)


def signed_log1p(x: float) -> float:
    """``log1p`` mirrored for negative values (a block count can fall).

    >>> signed_log1p(-math.e + 1)
    -1.0
    """
    return _log1p(x) if x >= 0 else -_log1p(-x)


class MetricValues:
    """Lays out one request's values of ``metrics[1:]`` (all but latency, which every
    request has and the model takes apart)."""

    __slots__ = ("cpu", "memory", "queries", "repeat")

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.cpu = "cpu" in metrics
        self.queries = "queries" in metrics
        self.repeat = "repeat_share" in metrics
        self.memory = "memory" in metrics

    def of(self, cpu_ms: float | None, query_count: int | None, query_ms: float | None,
           repeat_share: float | None = None,
           memory_blocks: int | None = None) -> list[float | None] | None:
        """The values in order, each :math:`\\log(1 + x)` (memory's signed); a None (not
        measured on this request: ``query_count=None`` for the query metrics) is not
        scored, and the trailing ones are left off: the model reads a prefix. None when
        nothing follows latency.

        >>> MetricValues(("latency", "cpu", "queries", "query_time", "memory")).of(
        ...     None, 0, 0.0, None, None)
        [None, 0.0, 0.0]
        """
        values: list[float | None] = []
        if self.cpu:
            values.append(None if cpu_ms is None else _log1p(cpu_ms) if cpu_ms > 0 else 0.0)
        if self.queries:
            values.append(None if query_count is None else _log1p(query_count))
            values.append(None if query_ms is None else _log1p(query_ms))
        if self.repeat:
            values.append(None if repeat_share is None else _log1p(repeat_share))
        if self.memory:
            values.append(None if memory_blocks is None else signed_log1p(memory_blocks))
        while values and values[-1] is None:
            values.pop()
        return values or None

    def learned(self, queried: bool, cpu_ms: float | None, query_count: int, query_ms: float,
                repeat_share: float, memory_blocks: int | None) -> list[float | None] | None:
        """What an endpoint's model learns of a finished request besides its latency.
        The query metrics of an endpoint that never ran SQL (``queried`` false) are left
        out while nothing else follows them, as on most requests: then latency, and CPU
        when sampled, say it all.

        >>> MetricValues(("latency", "cpu", "queries", "query_time")).learned(
        ...     False, None, 0, 0.0, 0.0, None) is None
        True
        """
        if query_count or memory_blocks is not None or queried:
            return self.of(cpu_ms, query_count, query_ms, repeat_share, memory_blocks)
        if cpu_ms is not None:
            return self.of(cpu_ms, None, None)
        return None
