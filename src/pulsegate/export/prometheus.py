"""Prometheus export with ``prometheus-client`` (the ``prometheus`` extra).

The figures of the OpenTelemetry instruments but the incident counter (incidents are
in ``gate.incidents()``, the logs and the dashboard), in Prometheus' naming (counters
end in ``_total``, base units):

==========================================  =========  ==============================
metric                                      type       labels
==========================================  =========  ==============================
``pulsegate_anomaly_score``                 histogram  ``route``, ``method``
``pulsegate_anomalies_total``               counter    ``route``, ``method``
``pulsegate_detections_total``              counter    ``route``, ``method``, ``kind``
``pulsegate_throttles_total``               counter    ``route``, ``method``
``pulsegate_sheds_total``                   counter    ``route``, ``method``
``pulsegate_allocator_limit``               gauge
``pulsegate_allocator_in_flight``           gauge
``pulsegate_recommended_workers``           gauge      (set by ``pulsegate.advisor``)
``pulsegate_unit_runs_total``               counter    ``kind``, ``name``, ``outcome``
``pulsegate_unit_duration_seconds``         histogram  ``kind``, ``name``
==========================================  =========  ==============================

Units of work that are not requests (:mod:`pulsegate.units`: jobs, their queue wait,
outbound calls) show beside the endpoints in the first three families, with ``method``
the kind (``JOB``, ``QUEUE``, ``UPSTREAM``, ``CACHE``) and ``route`` the name, and in the
two ``pulsegate_unit_*`` families (a ``QUEUE`` unit's duration is the job's wait).

The metric objects are registered once per registry (the client's default ``REGISTRY``
unless one is passed), so several gates in one process share them, and an application
that already serves ``/metrics`` shows them with no further set-up. The middleware also
serves them at ``prometheus_path``.

gunicorn and other pre-fork servers: each worker has its own counters, and a scrape
reaches one worker. Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the
server starts (prometheus-client's multiprocess mode): the counters and histograms are
then kept in memory-mapped files, the gauges are summed over live workers
(``livesum``), and :meth:`PrometheusExporter.render` aggregates every worker's files
with ``MultiProcessCollector``. Call ``prometheus_client.multiprocess.mark_process_dead``
from gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.export.otel import SCORE_BUCKETS
from pulsegate.export.series import allocator_state
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host

_LOCK = threading.Lock()
_BY_REGISTRY: dict[int, tuple[Any, dict[str, Any]]] = {}


def _metrics(registry: Any) -> dict[str, Any]:
    """The pulsegate metric objects of ``registry``, created on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    with _LOCK:
        found = _BY_REGISTRY.get(id(registry))
        if found is not None and found[0] is registry:
            return found[1]
        labels = ("route", "method")
        m = {
            "score": Histogram("pulsegate_anomaly_score", "Anomaly score of each request "
                               "against its endpoint's baseline (0-1).", labels,
                               buckets=SCORE_BUCKETS, registry=registry),
            "anomalies": Counter("pulsegate_anomalies", "Requests classed as anomalous.",
                                 labels, registry=registry),
            "detections": Counter("pulsegate_detections", "Query problems found (N+1, "
                                  "repeated identical, write loops).", (*labels, "kind"),
                                  registry=registry),
            "throttles": Counter("pulsegate_throttles", "Requests refused by the adaptive "
                                 "rate limiter (429).", labels, registry=registry),
            "sheds": Counter("pulsegate_sheds", "Requests shed by the concurrency "
                             "allocator (503).", labels, registry=registry),
            "limit": Gauge("pulsegate_allocator_limit", "Concurrency limit the allocator "
                           "currently admits.", registry=registry, multiprocess_mode="livesum"),
            "in_flight": Gauge("pulsegate_allocator_in_flight", "Requests currently "
                               "admitted by the allocator.", registry=registry,
                               multiprocess_mode="livesum"),
            "recommended_workers": Gauge(
                "pulsegate_recommended_workers", "Workers (requests served at once) the "
                "observed peak needs for the latency target (pulsegate.advisor).",
                registry=registry, multiprocess_mode="max"),
        }
        unit = ("kind", "name")
        m["unit_runs"] = Counter("pulsegate_unit_runs", "Finished runs of units of work that "
                                 "are not requests (JOB, QUEUE, UPSTREAM, CACHE), by outcome.",
                                 (*unit, "outcome"), registry=registry)
        m["unit_seconds"] = Histogram("pulsegate_unit_duration_seconds", "Duration of each "
                                      "run of a unit: a job's execution, a QUEUE's wait, an "
                                      "upstream call.", unit, registry=registry)
        _BY_REGISTRY[id(registry)] = (registry, m)
        return m


class PrometheusExporter:
    """Feeds the metric objects from the end-of-request listener."""

    def __init__(self, gate: Host, registry: Any = None) -> None:
        import prometheus_client

        self.gate = gate
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        m = _metrics(self.registry)
        self._score, self._anomalies = m["score"], m["anomalies"]
        self._detections, self._throttles, self._sheds = (
            m["detections"], m["throttles"], m["sheds"])
        self._limit, self._in_flight = m["limit"], m["in_flight"]
        self._unit_runs, self._unit_seconds = m["unit_runs"], m["unit_seconds"]
        # Label look-ups cost a lock and a tuple hash: cache the children per endpoint
        # (capped; get does not refresh, so the oldest made goes first).
        self._children: BoundedLRU[str, tuple[Any, Any]] = BoundedLRU(4 * gate.config.model.max_endpoints)

    def __call__(self, record: RequestRecord, ctx: RequestContext) -> None:
        key = record.endpoint
        children = self._children.get(key)
        if children is None:
            children = (self._score.labels(record.route, record.method),
                        self._anomalies.labels(record.route, record.method))
            self._children.put(key, children)
        children[0].observe(record.anomaly_score)
        if record.anomalous:  # the engine's verdict (its threshold, its warm-up)
            children[1].inc()
        opt = record.optimization
        if opt == "throttle":
            self._throttles.labels(record.route, record.method).inc()
        elif opt == "shed":
            self._sheds.labels(record.route, record.method).inc()
        if record.detections:
            for det in ctx.detections:
                kind = str(getattr(det, "kind", None) or "unknown")
                self._detections.labels(record.route, record.method, kind).inc()
        limit, in_flight = allocator_state(self.gate)
        if limit is not None:
            self._limit.set(limit)
        if in_flight is not None:
            self._in_flight.set(in_flight)

    def on_unit(self, record: RequestRecord, run: RequestContext) -> None:
        """A finished unit run (pulsegate.units): its outcome and duration, and beside
        the endpoints (``method`` the kind, ``route`` the name) its score, anomaly and
        query detections."""
        kind, name = record.method, record.route
        self._unit_runs.labels(kind, name, getattr(run, "outcome", None) or "success").inc()
        self._unit_seconds.labels(kind, name).observe(record.duration_ms / 1000.0)
        self._score.labels(name, kind).observe(record.anomaly_score)
        if record.anomalous:
            self._anomalies.labels(name, kind).inc()
        if record.detections:
            for det in run.detections:
                self._detections.labels(name, kind,
                                        str(getattr(det, "kind", None) or "unknown")).inc()

    def render(self) -> tuple[str, bytes]:
        """(content type, body) of the exposition: this registry, or every worker's
        files in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return CONTENT_TYPE_LATEST, generate_latest(registry)
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


def install(gate: Host, registry: Any = None) -> PrometheusExporter:
    """Attach a :class:`PrometheusExporter` to ``gate`` (default: the global registry)."""
    exporter = PrometheusExporter(gate, registry)
    gate.listeners.append(exporter)
    gate.unit_listeners.append(exporter.on_unit)
    return exporter


def recommended_workers_gauge(registry: Any = None) -> Any:
    """The ``pulsegate_recommended_workers`` gauge of ``registry`` (default: the global
    one), which the advisor's capacity job sets (:mod:`pulsegate.advisor.capacity`)."""
    import prometheus_client

    return _metrics(registry if registry is not None else prometheus_client.REGISTRY)[
        "recommended_workers"]
