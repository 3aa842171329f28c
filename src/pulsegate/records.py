"""The plain data that crosses layers: what an adapter knows of a request, and what the
engine recorded of it. No behaviour beyond a few derived properties."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

#: The one endpoint key unmatched routes fold into, so random URLs cannot grow memory.
UNMATCHED = "UNMATCHED"
#: How each scored metric of :data:`pulsegate.learn.metrics.METRICS` reads in a message.
METRIC_WORDS = {"latency": "latency", "cpu": "CPU time", "queries": "query count",
                "query_time": "query time", "repeat_share": "repeated-query share",
                "memory": "memory"}


class HeaderGetter(Protocol):
    """Read access to request headers by lower-case name; None when absent."""

    def get(self, name: str, /) -> str | None: ...


class NoHeaders:
    def get(self, name: str, /) -> str | None:
        return None


_NO_HEADERS = NoHeaders()


class RequestInfo(NamedTuple):
    """What an adapter tells the engine at the start of a request.

    ``route`` is the low-cardinality route template ("/users/{id}") when the framework
    already knows it; otherwise the adapter gives a ``route_resolver``, or names the
    route itself at response start (:meth:`pulsegate.cycle.RequestCycle.response_start`'s
    ``route``).

    A tuple: one is made per request, and adapters build it with every field given,
    ``tuple.__new__(RequestInfo, (...))``, which runs no Python code at all
    (``benchmarks/bytecodes.py``: the NamedTuple's own ``__new__`` is a Python function
    of eight arguments).
    """

    method: str
    path: str
    route: str | None = None
    client_ip: str | None = None
    headers: HeaderGetter = _NO_HEADERS
    query_string: str = ""
    scheme: str = "http"
    #: Resolves the route when nothing has named it: before the app runs if a feature
    #: needs it up front (per-route rate limits, priority rules: the controller asks),
    #: else when the response starts (the request cycle asks). Adapters pass it when
    #: they can.
    route_resolver: Callable[[], str | None] | None = None


class FinishedRequest(Protocol):
    """What :meth:`RequestRecord.of_request` reads of a finished request (a
    :class:`~pulsegate.context.RequestContext`; records stay a leaf: no import of it)."""

    @property
    def info(self) -> RequestInfo: ...
    @property
    def route(self) -> str | None: ...
    @property
    def ttfb(self) -> float | None: ...
    @property
    def query_count(self) -> int: ...
    @property
    def query_ms(self) -> float: ...
    @property
    def client_key(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def optimization(self) -> str: ...


class RequestRecord(NamedTuple):
    """One finished request, as measured. Times are milliseconds, CPU too.

    ``memory_blocks`` is the net change in interpreter-allocated blocks during the
    request (``sys.getallocatedblocks()``), measured on one request in
    ``memory_sample_every`` at most (None on the others): a leak shows as a steady rise.
    ``cpu_ms`` is likewise measured on one request in ``cpu_sample_every`` at most (None
    on the others, and when ``measure_cpu`` is off); both intervals stretch where the
    read is dear (see :mod:`pulsegate.sampling`).

    Immutable: one is built per request and handed to every listener, so none of them
    can change what the next one sees. The engine builds it with :meth:`of_request`.
    """

    method: str
    route: str
    path: str
    status: int
    started_at: float
    ttfb_ms: float
    duration_ms: float
    cpu_ms: float | None
    memory_blocks: int | None
    query_count: int = 0
    query_ms: float = 0.0
    client: str | None = None
    error: str | None = None
    anomaly_score: float = 0.0
    confidence: float = 0.0
    predicted_ms: float | None = None
    optimization: str = "none"
    detections: int = 0
    #: The metric whose rise above its forecast gave ``anomaly_score`` (``"latency"``,
    #: ``"queries"``, ``"cpu"``...; None: nothing rose). Only rises are scored.
    anomaly_metric: str | None = None
    #: Whether the engine classed the request as an anomaly (its threshold, its
    #: warm-up, ``anomaly_detection`` on): what ``recent_anomalies`` holds. Carried on
    #: the record so a listener never has to infer it from the gate's shared buffer,
    #: which another thread may have appended to since.
    anomalous: bool = False

    @classmethod
    def of_request(cls, ctx: FinishedRequest, method: str, status: int, *, started_at: float,
                   duration_ms: float, cpu_ms: float | None, memory_blocks: int | None,
                   anomaly_score: float, confidence: float, predicted_ms: float | None,
                   detections: int, anomaly_metric: str | None = None,
                   anomalous: bool = False) -> RequestRecord:
        """The record of the finished request ``ctx``: what the adapter, the controller
        and the hooks left on it (route, path, time to headers, queries, client, error,
        optimization), and what the engine measured at its end. ``method`` as its
        endpoint key spells it (an unknown method is ``"OTHER"``)."""
        duration_to_headers = ctx.ttfb
        return cls(
            method=method, route=ctx.route or UNMATCHED, path=ctx.info.path, status=status,
            started_at=started_at,
            ttfb_ms=duration_ms if duration_to_headers is None else duration_to_headers * 1000.0,
            duration_ms=duration_ms, cpu_ms=cpu_ms, memory_blocks=memory_blocks,
            query_count=ctx.query_count, query_ms=ctx.query_ms, client=ctx.client_key,
            error=ctx.error, anomaly_score=anomaly_score, confidence=confidence,
            predicted_ms=predicted_ms, optimization=ctx.optimization, detections=detections,
            anomaly_metric=anomaly_metric, anomalous=anomalous)

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.route}"

    @property
    def unusual(self) -> str | None:
        """What made the request unusual, in words: ``"latency above forecast"``,
        ``"query count above usual"``... (None when no metric rose)."""
        metric = self.anomaly_metric
        if metric is None:
            return None
        noun = METRIC_WORDS.get(metric, metric)
        return f"{noun} above {'forecast' if metric == 'latency' else 'usual'}"

    @property
    def status_class(self) -> int:
        return self.status // 100
