"""OpenTelemetry export: attributes on the application's own server span (OTel's ASGI
and WSGI middleware in front of pulsegate), detection events with redacted SQL, no
extra spans, and the metrics instruments read with an InMemoryMetricReader."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from exportkit import FakeClock, build_app, make_gate
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OTelWSGI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.context import RequestContext
from pulsegate.engine import PulseGate
from pulsegate.export import otel, state
from pulsegate.export.otel import DETECTION_EVENT
from pulsegate.records import RequestRecord
from pulsegate.wsgi import PulseGateWSGIMiddleware

# These tests make N+1 patterns on purpose.
pytestmark = pytest.mark.pulsegate(nplusone="off")


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        out: dict[str, Any] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                if sm.scope.name == "pulsegate":
                    for m in sm.metrics:
                        out[m.name] = m
        return out


def instrumented(clock: FakeClock, tel: Telemetry, *, with_pulsegate: bool = True,
                 **options: Any) -> tuple[Any, PulseGate]:
    gate = make_gate(clock, **options)
    otel.install(gate, meter_provider=tel.meter_provider)
    inner: Any = build_app(clock)
    if with_pulsegate:
        inner = PulseGateMiddleware(inner, gate=gate)
    # OTel outermost, as FastAPIInstrumentor and OpenTelemetryMiddleware(app) place it.
    app = OpenTelemetryMiddleware(inner, tracer_provider=tel.tracer_provider,
                                  meter_provider=MeterProvider())
    return app, gate


async def run(app: Any, paths: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        return [await client.get(p) for p in paths]


WARM = [f"/work/{i}?ms={10 + i % 3}" for i in range(20)]


async def test_attributes_land_on_the_asgi_server_span(clock: FakeClock) -> None:
    tel = Telemetry()
    app, gate = instrumented(clock, tel)
    responses = await run(app, [*WARM, "/work/slow?ms=400"])
    spans = tel.server_spans()
    assert len(spans) == 21
    last = spans[-1].attributes or {}
    header_score = float(responses[-1].headers["x-ml-anomaly-score"])
    assert abs(last["pulsegate.anomaly_score"] - header_score) <= 0.0005 and header_score > 0.9
    predicted = float(responses[-1].headers["x-ml-predicted-latency-ms"])
    assert abs(last["pulsegate.predicted_latency_ms"] - predicted) <= 0.05
    assert 0 < last["pulsegate.confidence"] <= 100
    assert last["pulsegate.query_count"] == 0
    assert last["pulsegate.optimization"] == "none"
    first = spans[0].attributes or {}
    assert first["pulsegate.query_count"] == 0 and "pulsegate.anomaly_score" in first
    assert gate.faults.total == 0


async def test_headers_safe_still_scores_the_span_as_headers_all_would(
        clock: FakeClock) -> None:
    """With ``headers="safe"`` the engine does not score the response start (no header
    shows it); the exporter scores the time to headers itself, the same way."""
    scored = []
    for headers in ("all", "safe"):
        tel = Telemetry()
        app, gate = instrumented(clock, tel, headers=headers)
        responses = await run(app, [*WARM, "/work/slow?ms=400"])
        assert ("x-ml-anomaly-score" in responses[-1].headers) is (headers == "all")
        last = tel.server_spans()[-1].attributes or {}
        scored.append((last["pulsegate.anomaly_score"], last["pulsegate.predicted_latency_ms"]))
        assert gate.faults.total == 0
    assert scored[0] == scored[1] and scored[1][0] > 0.9


async def test_the_asgi_server_span_is_already_ended_at_finish(clock: FakeClock) -> None:
    """Why the exporter writes at response start: OTel's ASGI middleware ends its server
    span inside ``send`` of the last body chunk, before pulsegate's finish runs."""
    tel = Telemetry()
    app, gate = instrumented(clock, tel)
    at_finish: list[bool] = []

    def probe(record: RequestRecord, ctx: RequestContext) -> None:
        at_finish.append(trace.get_current_span().is_recording())

    gate.listeners.append(probe)
    await run(app, ["/work/1?ms=5"])
    assert at_finish == [False]
    assert "pulsegate.anomaly_score" in (tel.server_spans()[0].attributes or {})


async def test_no_span_of_our_own(clock: FakeClock) -> None:
    """Exactly the spans OTel makes without pulsegate: no duplicate server span."""
    counts = []
    for with_pg in (False, True):
        tel = Telemetry()
        app, _ = instrumented(clock, tel, with_pulsegate=with_pg)
        await run(app, ["/work/1?ms=5", "/work/2?ms=5&n1=6"])
        spans = tel.spans.get_finished_spans()
        counts.append((len(spans), len(tel.server_spans())))
    assert counts[0] == counts[1] and counts[1][1] == 2


async def test_detection_events_carry_redacted_sql_only(clock: FakeClock) -> None:
    tel = Telemetry()
    app, _ = instrumented(clock, tel)
    await run(app, ["/work/n1?ms=10&n1=8"])
    span = tel.server_spans()[-1]
    events = [e for e in span.events if e.name == DETECTION_EVENT]
    assert len(events) == 1
    attrs = dict(events[0].attributes or {})
    assert attrs["pulsegate.detection.kind"] == "n_plus_one"
    assert attrs["pulsegate.detection.count"] == 8
    assert attrs["pulsegate.detection.relationship"] == "Author.books"
    assert attrs["pulsegate.detection.call_site"].startswith("app/views.py:12")
    sql = attrs["db.query.text"]
    assert "?" in sql and not re.search(r"author_id = \d", sql)
    assert (span.attributes or {})["pulsegate.query_count"] == 9


async def test_no_active_span_is_a_no_op(clock: FakeClock) -> None:
    tel = Telemetry()
    gate = make_gate(clock)
    otel.install(gate, meter_provider=tel.meter_provider)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    await run(app, ["/work/1?ms=5", "/work/2?ms=5"])
    assert gate.faults.total == 0
    assert tel.metrics()["pulsegate.anomaly.score"].data.data_points[0].count == 2


def test_wsgi_span_gets_final_figures(clock: FakeClock) -> None:
    """Under OTel's WSGI middleware the span is still open at finish: the final figures
    (full-duration score, every detection) land there."""
    tel = Telemetry()
    gate = make_gate(clock)
    otel.install(gate, meter_provider=tel.meter_provider)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from pulsegate.context import query_sink
        from pulsegate.queries.events import QueryEvent
        sink = query_sink.get()
        start_response("200 OK", [("content-type", "text/plain")])
        if sink is not None and "n1" in environ.get("QUERY_STRING", ""):
            for i in range(6):
                sink.add_query(QueryEvent(f"SELECT * FROM book WHERE id = {i}", 0.1,
                                          params_hash=i, call_site="app.py:3 in view"))
        clock.t += 0.01
        return [b"ok"]

    app = OTelWSGI(PulseGateWSGIMiddleware(wsgi_app, gate=gate),
                   tracer_provider=tel.tracer_provider, meter_provider=MeterProvider())
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        for i in range(3):
            client.get(f"/items/{i}")
        client.get("/items/x?n1=1")
    spans = tel.server_spans()
    assert len(spans) == 4
    last = spans[-1].attributes or {}
    # statements ran after the headers were sent: only the finish-time figures have them
    assert last["pulsegate.query_count"] == 6
    assert [e.name for e in spans[-1].events].count(DETECTION_EVENT) == 1
    assert gate.faults.total == 0


NAME = re.compile(r"^pulsegate(\.[a-z][a-z0-9_]*)+$")


async def test_metrics(clock: FakeClock) -> None:
    tel = Telemetry()
    app, gate = instrumented(clock, tel, resource_allocation=True)
    await run(app, [*WARM, "/work/slow?ms=400", "/work/n1?ms=10&n1=8"])
    m = tel.metrics()
    assert set(m) >= {"pulsegate.anomaly.score", "pulsegate.anomalies", "pulsegate.detections",
                      "pulsegate.allocator.limit", "pulsegate.allocator.in_flight"}
    for name, metric in m.items():
        assert NAME.match(name) and not name.endswith("total"), name
        assert metric.unit, name
    hist = m["pulsegate.anomaly.score"].data.data_points
    assert sum(p.count for p in hist) == 22
    assert hist[0].attributes == {"http.route": "/work/{item}", "http.request.method": "GET"}
    assert list(hist[0].explicit_bounds) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    anomalies = sum(p.value for p in m["pulsegate.anomalies"].data.data_points)
    assert anomalies == gate.counters["anomalies"] >= 1
    det = m["pulsegate.detections"].data.data_points
    assert [(p.attributes["pulsegate.detection.kind"], p.value) for p in det] == [("n_plus_one", 1)]
    limit = m["pulsegate.allocator.limit"].data.data_points[0].value
    assert limit == gate.control.allocator.limit > 0
    assert m["pulsegate.allocator.in_flight"].data.data_points[0].value == 0


async def test_throttles_counted(clock: FakeClock) -> None:
    tel = Telemetry()
    app, gate = instrumented(clock, tel, rate_limiting=True, rate_limit="3/minute")
    responses = await run(app, [f"/work/{i}?ms=5" for i in range(6)])
    refused = sum(r.status_code == 429 for r in responses)
    assert refused >= 1
    points = tel.metrics()["pulsegate.throttles"].data.data_points
    assert sum(p.value for p in points) == refused
    assert (tel.server_spans()[-1].attributes or {})["pulsegate.optimization"] == "throttle"


def test_config_installs_with_the_global_provider(clock: FakeClock) -> None:
    gate = make_gate(clock, otel=True)
    exporter = state(gate).otel
    assert exporter is not None
    assert exporter.on_finish in gate.listeners
    assert exporter.on_response_start in gate.start_listeners


async def test_measurements_recorded_off_the_request_path(clock: FakeClock) -> None:
    tel = Telemetry()
    app, gate = instrumented(clock, tel)
    exporter = state(gate).otel or next(
        h.__self__ for h in gate.start_listeners if isinstance(h.__self__, otel.OTelExporter))  # type: ignore[attr-defined]
    assert "pulsegate.export.otel" in gate.scheduler.jobs
    await run(app, ["/work/1?ms=5", "/work/2?ms=5", "/work/3?ms=5"])
    assert len(exporter._queue) == 3  # queued, not yet recorded
    assert exporter.flush() == 3 and not exporter._queue
    await run(app, ["/work/4?ms=5"])
    # a collection records what is queued first
    assert sum(p.count for p in tel.metrics()["pulsegate.anomaly.score"].data.data_points) == 4
    assert not exporter._queue


def test_missing_opentelemetry_fails_open(clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import raises ImportError
    gate = make_gate(clock, otel=True)
    assert state(gate).otel is None and not gate.start_listeners
    assert gate.faults.total == 1
    assert "pip install 'pulsegate[otel]'" in caplog.text


async def test_incidents_counted_per_endpoint(clock: FakeClock) -> None:
    tel = Telemetry()
    app, gate = instrumented(clock, tel, aggregation_window=1)
    # steady windows, then a sustained shift over several windows (as in test_logs)
    await run(app, [f"/work/{i}?ms={100 + i % 7}" for i in range(200)])
    await run(app, ["/work/x?ms=900"] * 12)
    assert gate.counters["incidents"] >= 1
    points = tel.metrics()["pulsegate.incidents"].data.data_points
    assert [(p.attributes, p.value) for p in points] == [
        ({"http.route": "/work/{item}", "http.request.method": "GET"},
         gate.counters["incidents"])]


def test_incident_event_attributes_are_the_incident_fields() -> None:
    attrs = otel.incident_attributes({"endpoint": "GET /x", "ratio": 4.0, "requests": 90,
                                      "windows": 3, "id": "incident-1", "feedback": None})
    assert attrs == {"pulsegate.incident.endpoint": "GET /x", "pulsegate.incident.ratio": 4.0,
                     "pulsegate.incident.requests": 90, "pulsegate.incident.windows": 3,
                     "pulsegate.incident.id": "incident-1"}
