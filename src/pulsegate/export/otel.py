"""OpenTelemetry export: ``pulsegate.*`` attributes and detection events on the span the
application's own instrumentation made, plus metrics instruments.

pulsegate never starts a span of its own for a request -- a second server span per
request is what users already complain about in OTel's ASGI instrumentation (contrib
#831, #635). It decorates whatever span is current, and does nothing when none is
recording. (The one span it makes: a job learnt after its own span ended gets a child
of that span, below.)

Where the attributes land. ``opentelemetry-instrumentation-asgi`` keeps its server span
current around the whole application, but ends it inside its ``send`` wrapper right
after the final body chunk went out (``otel_send`` calls ``server_span.end()``). With
pulsegate inside that middleware (``FastAPIInstrumentor`` and ``OpenTelemetryMiddleware``
wrap the whole app), pulsegate's ``finish`` runs after that ``send`` returned: the span
is still current but already ended, and attributes set then are dropped. So the
exporter works in two steps:

* when the response starts (``gate.start_listeners``), the current span is the server
  span and still open: it gets the figures known then (time-to-headers score,
  forecast, confidence, queries so far, optimization, detections so far), and is
  remembered for this request;
* at the end (``gate.listeners``), if that span is still recording -- WSGI, Django and
  streaming cases end it later -- the final figures overwrite the early ones and any
  detection not yet reported is added as an event.

Detection events carry the redacted statement (``db.query.text`` holds the fingerprint
with literals replaced by ``?``), never parameters.

``pulsegate.anomaly.score`` is how unusual one request is (``x-ml-anomaly-score``);
``pulsegate.incidents`` counts endpoints that changed (their windows kept sitting above
their baseline: :class:`pulsegate.incidents.Incident`). Each incident is also an event
``pulsegate.incident`` with its fields (``pulsegate.incident.ratio``, ``.requests``, ...)
on the span of the request that closed the window, when that span still records.

Metric measurements are queued on the request path and recorded by the scheduler
thread every second and at the start of every collection (the first observable
callback flushes the queue), so a reader always sees every finished request.

Metrics follow the OTel naming rules (lower-case dotted namespaces, units in ``unit``,
no ``_total`` suffix -- exporters add it), attributes ``http.route`` and
``http.request.method`` (bounded: routes are templates and unmatched paths fold into
one key):

====================================  ================  =========================
instrument                            kind              unit
====================================  ================  =========================
``pulsegate.anomaly.score``           histogram         ``1`` (buckets 0.1 .. 1)
``pulsegate.anomalies``               counter           ``{request}``
``pulsegate.incidents``               counter           ``{incident}``
``pulsegate.detections``              counter           ``{detection}`` (+ kind)
``pulsegate.throttles``               counter           ``{request}``
``pulsegate.sheds``                   counter           ``{request}``
``pulsegate.allocator.limit``         observable gauge  ``{request}``
``pulsegate.allocator.in_flight``     observable gauge  ``{request}``
``pulsegate.unit.runs``               counter           ``{run}`` (+ outcome)
``pulsegate.unit.duration``           histogram         ``s``
====================================  ================  =========================

Units of work that are not requests (:mod:`pulsegate.units`) carry the attributes
``pulsegate.unit.kind`` (``JOB``, ``QUEUE``, ``UPSTREAM``, ``CACHE``) and
``pulsegate.unit.name`` instead of the HTTP ones; a JOB run decorates the current span
(the task's, under OpenTelemetry's Celery instrumentation) with the request attributes
plus ``pulsegate.job.name``, ``.outcome``, ``.retries`` and ``.queue_wait_ms`` -- or,
when the job was learnt after that span ended (``job_learning="background"``), a child
span of it, ``pulsegate JOB <name>``, carries them (:mod:`pulsegate.export.otel_jobs`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.export.otel_jobs import JobSpans, job_attributes, record_attributes
from pulsegate.export.series import allocator_state, detection_fields
from pulsegate.learn.baseline import endpoint_key
from pulsegate.learn.metrics import transform
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Name of the span event added for each query detection.
DETECTION_EVENT = "pulsegate.query_detection"
#: Name of the span event added for each incident (an endpoint changed).
INCIDENT_EVENT = "pulsegate.incident"
_MAX_PENDING = 10_000
_MAX_QUEUED = 50_000
#: Seconds between flushes of the queued measurements (and at every collection).
FLUSH_INTERVAL = 1.0


class OTelExporter:
    """Span decoration and metrics for one gate. Build with :func:`install`."""

    def __init__(self, gate: Host, meter_provider: Any = None,
                 tracer_provider: Any = None) -> None:
        from opentelemetry import metrics, trace  # optional dependency: the otel extra

        self.gate = gate
        self._get_span = trace.get_current_span
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        from pulsegate.version import __version__
        meter = provider.get_meter("pulsegate", __version__)
        self.score = meter.create_histogram(
            "pulsegate.anomaly.score", unit="1",
            description="Anomaly score of each request against its endpoint's baseline (0-1).",
            explicit_bucket_boundaries_advisory=list(SCORE_BUCKETS))
        self.anomalies = meter.create_counter(
            "pulsegate.anomalies", unit="{request}",
            description="Requests classed as anomalous by their endpoint's model.")
        self.incidents = meter.create_counter(
            "pulsegate.incidents", unit="{incident}",
            description="Endpoints that changed: windows kept above the learnt baseline.")
        self._incidents_seen = gate.counters.get("incidents", 0)
        self._new_incidents: deque[dict[str, Any]] = deque(maxlen=_MAX_PENDING)
        self.detections = meter.create_counter(
            "pulsegate.detections", unit="{detection}",
            description="Query problems found (N+1, repeated identical, write loops).")
        self.throttles = meter.create_counter(
            "pulsegate.throttles", unit="{request}",
            description="Requests refused by the adaptive rate limiter (429).")
        self.sheds = meter.create_counter(
            "pulsegate.sheds", unit="{request}",
            description="Requests shed by the concurrency allocator (503).")
        meter.create_observable_gauge(
            "pulsegate.allocator.limit", callbacks=[self._observe_limit], unit="{request}",
            description="Concurrency limit the allocator currently admits.")
        meter.create_observable_gauge(
            "pulsegate.allocator.in_flight", callbacks=[self._observe_in_flight],
            unit="{request}", description="Requests currently admitted by the allocator.")
        from opentelemetry.metrics import Observation
        self._observation = Observation
        # id(ctx) -> (span, detections reported, attributes set); filled at response start,
        # emptied at the end of the same request.
        self._pending: dict[int, tuple[Any, int, dict[str, Any]]] = {}
        # Attribute dicts per endpoint, made once (a FIFO: get does not refresh).
        self._attrs: BoundedLRU[str, dict[str, str]] = BoundedLRU(4 * gate.config.model.max_endpoints)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._unit_queue: deque[tuple[str, str, float, str, float]] = deque()
        self.unit_runs = meter.create_counter(
            "pulsegate.unit.runs", unit="{run}",
            description="Finished runs of units that are not requests (jobs, queue waits, "
                        "outbound calls), by kind, name and outcome.")
        self.unit_duration = meter.create_histogram(
            "pulsegate.unit.duration", unit="s",
            description="Duration of each unit run: a job's execution, a QUEUE's wait, an "
                        "upstream call.")
        #: spans for the jobs learnt after their own span ended
        self.job_spans = JobSpans(tracer_provider)

    # --- spans ------------------------------------------------------------------------

    def on_response_start(self, ctx: RequestContext, status: int) -> None:
        span = self._get_span()
        if not span.is_recording():
            return
        # The SDK validates every attribute value (~3 µs each): set few, set them once.
        attrs: dict[str, Any] = {"pulsegate.query_count": ctx.query_count,
                                 "pulsegate.optimization": ctx.optimization}
        score, model = ctx.score, ctx.model
        if score is None or model is None:  # headers "safe"/"none": score it ourselves
            score, model = self._early_score(ctx)
        if score is not None and model is not None:
            predicted, confidence = model.view[:2]
            attrs["pulsegate.anomaly_score"] = round(float(score), 4)
            attrs["pulsegate.confidence"] = round(float(confidence), 2)
            if predicted is not None:
                attrs["pulsegate.predicted_latency_ms"] = round(float(predicted), 3)
        dets = ctx.detections
        if dets:
            attrs["pulsegate.nplusone"] = len(dets)
        span.set_attributes(attrs)
        reported = _add_events(span, dets, 0)
        pending = self._pending
        if len(pending) >= _MAX_PENDING:  # requests that never finished: drop, stay bounded
            pending.clear()
        pending[id(ctx)] = (span, reported, attrs)

    def _early_score(self, ctx: RequestContext) -> tuple[float | None, Any]:
        """(score of the time to headers, the endpoint's model), or (None, None)."""
        if ctx.ttfb is None:
            return None, None
        model = self.gate.baselines.peek(endpoint_key(ctx.info.method, ctx.route))
        if model is None:
            return None, None
        return model.score_latency(transform("latency", ctx.ttfb * 1000.0)), model

    def on_finish(self, record: RequestRecord, ctx: RequestContext) -> None:
        entry = self._pending.pop(id(ctx), None)
        if entry is not None:
            span, reported, sent = entry
        else:
            span, reported, sent = self._get_span(), 0, {}
        if span.is_recording():
            final = record_attributes(record)
            final["pulsegate.optimization"] = record.optimization
            changed = {k: v for k, v in final.items() if sent.get(k) != v}
            if changed:
                span.set_attributes(changed)
            _add_events(span, ctx.detections, reported)
        self._incidents(span)
        self._metrics(record, ctx)

    def _incidents(self, span: Any) -> None:
        """Count the incidents flagged since the last record (each an event on ``span``
        when it records)."""
        n = self.gate.counters.get("incidents", 0)
        if n != self._incidents_seen:  # flagged while finishing this request
            new = list(self.gate.incidents)[-(n - self._incidents_seen):] \
                if n > self._incidents_seen else []
            self._incidents_seen = n
            for inc in new:
                self._new_incidents.append(inc)
                if span is not None and span.is_recording():
                    span.add_event(INCIDENT_EVENT, incident_attributes(inc))

    def on_unit(self, record: RequestRecord, run: RequestContext) -> None:
        """A finished unit run (pulsegate.units). A JOB's figures go on the current span
        -- the task's own when the job library is OTel-instrumented -- as a request's
        do, plus ``pulsegate.job.*``; a JOB learnt after its span ended (``run.trace``:
        the context it started in) gets a child span of that span instead
        (:mod:`pulsegate.export.otel_jobs`). Other kinds (an outbound call, a cache) run
        inside someone else's span and leave it alone. Metrics: ``pulsegate.unit.runs``
        and ``pulsegate.unit.duration``, and the score beside the endpoints."""
        span = child = None
        try:
            if record.method == "JOB":
                captured = getattr(run, "trace", None)
                if captured is None:
                    span = self._get_span()
                else:
                    span = child = self.job_spans.start(record, captured)
                if span is not None and span.is_recording():
                    span.set_attributes(job_attributes(record, run))
                    _add_events(span, run.detections, 0)
            self._incidents(span)
        finally:
            if child is not None:
                self.job_spans.end(child, record)
        self._unit_queue.append((record.method, record.route, record.duration_ms / 1000.0,
                                 getattr(run, "outcome", None) or "success",
                                 record.anomaly_score))
        if len(self._unit_queue) >= _MAX_QUEUED:
            self.flush()

    # --- metrics ----------------------------------------------------------------------

    def _metrics(self, record: RequestRecord, ctx: RequestContext) -> None:
        """Queue this request's measurements; :meth:`flush` records them.

        The SDK's ``Histogram.record`` costs ~10-20 µs (it validates and hashes the
        attributes on every call), more than all of pulsegate's own per-request work, so
        the request path only appends a tuple to a deque (thread-safe, ~0.1 µs)."""
        kinds = None
        if record.detections:
            kinds = tuple(str(getattr(d, "kind", None) or "unknown") for d in ctx.detections)
        queue = self._queue
        queue.append((record.endpoint, record.route, record.method, record.anomaly_score,
                      record.anomalous, record.optimization, kinds))
        if len(queue) >= _MAX_QUEUED:  # a stalled scheduler must not grow memory
            self.flush()

    def flush(self) -> int:
        """Record the queued measurements (scheduler thread, and before every metrics
        collection); returns how many requests were recorded."""
        while self._new_incidents:
            try:
                inc = self._new_incidents.popleft()
            except IndexError:
                break
            method, _, route = str(inc.get("endpoint")).partition(" ")
            self.incidents.add(1, {"http.route": route, "http.request.method": method})
        units = self._unit_queue
        while units:
            try:
                kind, name, seconds, outcome, score = units.popleft()
            except IndexError:
                break
            unit = {"pulsegate.unit.kind": kind, "pulsegate.unit.name": name}
            self.unit_duration.record(seconds, unit)
            self.unit_runs.add(1, {**unit, "pulsegate.unit.outcome": outcome})
            self.score.record(score, unit)
        queue = self._queue
        n = 0
        while True:
            try:
                key, route, method, score, anomalous, opt, kinds = queue.popleft()
            except IndexError:
                return n
            n += 1
            attrs = self._attrs.get(key)
            if attrs is None:
                attrs = {"http.route": route, "http.request.method": method}
                self._attrs.put(key, attrs)
            self.score.record(score, attrs)
            if anomalous:
                self.anomalies.add(1, attrs)
            if opt == "throttle":
                self.throttles.add(1, attrs)
            elif opt == "shed":
                self.sheds.add(1, attrs)
            for kind in kinds or ():
                self.detections.add(1, {**attrs, "pulsegate.detection.kind": kind})

    def _observe_limit(self, options: Any) -> Iterable[Any]:
        # Observable callbacks run at the start of every collection, before the
        # synchronous instruments are read: the moment to record what is queued.
        self.flush()
        limit, _ = allocator_state(self.gate)
        return [] if limit is None else [self._observation(limit)]

    def _observe_in_flight(self, options: Any) -> Iterable[Any]:
        _, in_flight = allocator_state(self.gate)
        return [] if in_flight is None else [self._observation(in_flight)]


def incident_attributes(incident: dict[str, Any]) -> dict[str, Any]:
    """The span event attributes of one incident: the fields of
    :class:`pulsegate.incidents.Incident`, prefixed ``pulsegate.incident.``."""
    return {f"pulsegate.incident.{k}": v for k, v in incident.items()
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)}


def _add_events(span: Any, detections: list[Any] | None, start: int) -> int:
    """Add one event per detection from index ``start``; returns how many there are."""
    if not detections:
        return start
    for det in detections[start:]:
        f = detection_fields(det)
        attrs = {"pulsegate.detection.kind": f["kind"], "db.query.text": f["sql"],
                 "pulsegate.detection.fingerprint": f["fingerprint"],
                 "pulsegate.detection.count": f["count"],
                 "pulsegate.detection.total_ms": f["total_ms"],
                 "pulsegate.detection.call_site": f["call_site"],
                 "pulsegate.detection.relationship": f["relationship"],
                 "pulsegate.detection.suggestion": f["suggestion"],
                 "pulsegate.detection.confidence": f["confidence"]}
        span.add_event(DETECTION_EVENT, {k: v for k, v in attrs.items() if v is not None})
    return len(detections)


def install(gate: Host, meter_provider: Any = None,
            tracer_provider: Any = None) -> OTelExporter:
    """Attach an :class:`OTelExporter` to ``gate`` (its response-start and end hooks, its
    unit hook, and the trace context a job learnt in the background keeps).

    ``meter_provider`` defaults to the global one (``metrics.get_meter_provider()``);
    ``tracer_provider`` too (``trace.get_tracer_provider()``): it makes only the child
    spans of jobs learnt in the background -- everything else decorates the current
    span."""
    exporter = OTelExporter(gate, meter_provider, tracer_provider)
    gate.plugs.set_trace_context(exporter.job_spans.capture)
    gate.start_listeners.append(exporter.on_response_start)
    gate.listeners.append(exporter.on_finish)
    gate.unit_listeners.append(exporter.on_unit)
    gate.scheduler.every(FLUSH_INTERVAL, exporter.flush, name="pulsegate.export.otel")
    return exporter
