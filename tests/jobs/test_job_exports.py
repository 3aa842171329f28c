"""Jobs in the exporters, beside endpoints: Prometheus (unit families, score with the kind
as ``method``), OpenTelemetry (the task's own span under OpenTelemetry's Celery
instrumentation gets ``pulsegate.job.*``, or a child of it when the job is learnt in the
background; unit metrics), the dashboard's series and
summary, and ``gate.endpoints()``."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from jobs_learnt import learnt
from opentelemetry import context
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pulsegate.engine import PulseGate
from pulsegate.export import otel, prometheus
from pulsegate.jobs import celery as pg_celery
from pulsegate.jobs import observe_job


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_shows_runs_durations_and_waits_beside_the_endpoints() -> None:
    registry = CollectorRegistry()
    gate = PulseGate(log_events=False)
    exporter = prometheus.install(gate, registry)
    for _ in range(3):
        with observe_job("mail.send", gate=gate, queue_wait_ms=120.0):
            pass
    with pytest.raises(RuntimeError), observe_job("mail.send", gate=gate):
        raise RuntimeError("smtp down")
    learnt(gate)
    s = samples(exporter.render()[1].decode())
    job = (("kind", "JOB"), ("name", "mail.send"))
    assert s[("pulsegate_unit_runs_total", (*job, ("outcome", "success")))] == 3
    assert s[("pulsegate_unit_runs_total", (*job, ("outcome", "failure")))] == 1
    assert s[("pulsegate_unit_duration_seconds_count", job)] == 4
    wait = (("kind", "QUEUE"), ("name", "mail.send"))
    assert s[("pulsegate_unit_duration_seconds_sum", wait)] == pytest.approx(0.36)
    assert s[("pulsegate_anomaly_score_count", (("method", "JOB"), ("route", "mail.send")))] == 4


def spans_seen(gate: PulseGate, spans: InMemorySpanExporter) -> tuple[Any, ...]:
    """The finished spans, once the gate learnt every job run (background: its drain)."""
    learnt(gate)
    return spans.get_finished_spans()


@pytest.fixture(params=["inline", "background"])
def traced(request: pytest.FixtureRequest) -> Iterator[tuple[Any, InMemorySpanExporter,
                                                             InMemoryMetricReader, PulseGate]]:
    """A Celery app whose tasks run in-process (``apply``: the worker's tracer and
    signals), instrumented by OpenTelemetry first, then by pulsegate -- the order in
    which OpenTelemetry's span would already be ended in ``task_postrun`` -- learning
    jobs ``inline`` or in the ``background``."""
    app = Celery("traced", broker="memory://")
    app.conf.task_ignore_result = True

    @app.task(name="reports.build")
    def build(n: int) -> int:
        return n * 2

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    reader = InMemoryMetricReader()
    gate = PulseGate(log_events=False, job_learning=request.param)
    otel.install(gate, meter_provider=MeterProvider(metric_readers=[reader]),
                 tracer_provider=provider)
    pg_celery.instrument(app, gate)
    try:
        yield build, spans, reader, gate
    finally:
        pg_celery.uninstrument()
        instrumentor.uninstrument()
        gate.close()


def job_figures(spans: tuple[Any, ...], task: str) -> list[dict[str, Any]]:
    """The ``pulsegate.*`` attributes each run of ``task`` left in the trace: on the
    task's own span (inline), or on a child of it (background)."""
    runs = {s.context.span_id: s for s in spans if s.name == f"run/{task}"}
    figures = []
    for span in spans:
        attrs = dict(span.attributes or {})
        if "pulsegate.job.name" not in attrs:
            continue
        if span.name != f"run/{task}":
            assert span.name == f"pulsegate JOB {task}"
            parent = runs[span.parent.span_id]  # a child of the task's span, same trace
            assert span.context.trace_id == parent.context.trace_id
            assert parent.start_time - 5_000_000 <= span.start_time <= span.end_time
            assert span.end_time <= parent.end_time + 5_000_000  # (two clocks: 5 ms)
        figures.append(attrs)
    return figures


def test_the_tasks_span_carries_the_jobs_figures(traced: Any) -> None:
    """Inline on the task's own span; in the background on a child of it, made by the
    drain after the task's span ended (before: the background lost them)."""
    build, spans, reader, gate = traced
    for n in range(3):
        assert build.apply((n,)).get() == 2 * n
    seen = spans_seen(gate, spans)
    assert len([s for s in seen if s.name == "run/reports.build"]) == 3
    figures = job_figures(seen, "reports.build")
    assert len(figures) == 3
    attrs = figures[-1]
    assert attrs["pulsegate.job.name"] == "reports.build"
    assert attrs["pulsegate.job.outcome"] == "success"
    assert "pulsegate.anomaly_score" in attrs and attrs["pulsegate.job.retries"] == 0
    data = reader.get_metrics_data()
    points = {(m.name, tuple(sorted(p.attributes.items()))): p
              for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics for p in m.data.data_points}
    runs = points[("pulsegate.unit.runs", (("pulsegate.unit.kind", "JOB"),
                                           ("pulsegate.unit.name", "reports.build"),
                                           ("pulsegate.unit.outcome", "success")))]
    assert runs.value == 3
    assert gate.stats()["internal_errors"] == 0


def test_a_job_outside_any_span_makes_no_trace_of_its_own(traced: Any) -> None:
    _, spans, _, gate = traced
    with observe_job("reports.loose", gate=gate):
        pass
    assert spans_seen(gate, spans) == ()
    assert gate.stats()["internal_errors"] == 0


class Broken(SpanProcessor):
    """A span pipeline that fails on pulsegate's spans (the application's own pass)."""

    def on_end(self, span: Any) -> None:
        if span.name.startswith("pulsegate "):
            raise RuntimeError("collector down")


def test_a_broken_span_pipeline_or_capture_never_fails_a_job() -> None:
    """A span processor that raises as the child span ends, then a trace capture that
    raises: every job still runs and is learnt; the faults are counted."""
    provider = TracerProvider()
    provider.add_span_processor(Broken())
    gate = PulseGate(log_events=False, job_learning="background")
    otel.install(gate, meter_provider=MeterProvider(), tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("task"), observe_job("mail.send", gate=gate):
        pass

    def capture() -> object:
        raise RuntimeError("context gone")

    gate.plugs.set_trace_context(capture)
    with tracer.start_as_current_span("task"), observe_job("mail.send", gate=gate):
        pass
    faults = learnt(gate).stats()["internal_errors"]
    assert faults == 2, gate.faults
    assert gate.stats()["jobs"]["names"]["mail.send"]["outcomes"] == {"success": 2}
    gate.close()


def test_an_outbound_unit_leaves_the_enclosing_span_alone() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    gate = PulseGate(log_events=False)
    otel.install(gate, meter_provider=MeterProvider())
    with provider.get_tracer("t").start_as_current_span("request"):
        gate.units.record("UPSTREAM", "https://api.example.com", 12.0)
    (span,) = spans.get_finished_spans()
    assert not any(k.startswith("pulsegate.") for k in (span.attributes or {}))
    gate.close()


def test_jobs_show_in_the_dashboard_series_and_summary() -> None:
    from pulsegate.export import state
    from pulsegate.export.dashboard.api import summary

    gate = PulseGate(log_events=False, dashboard=True, dashboard_allow_loopback=True)
    with observe_job("thumbs.resize", gate=gate):
        pass
    series = state(learnt(gate)).series
    assert series is not None
    page = summary(gate, series)
    assert "JOB thumbs.resize" in [row["endpoint"] for row in page["endpoints"]]
    assert series.endpoint_series("JOB thumbs.resize")
    assert page["stats"]["jobs"]["names"]["thumbs.resize"]["outcomes"] == {"success": 1}
    gate.close()


class Blob:
    """Something large an application put in the OpenTelemetry context of a job."""


def test_a_learnt_jobs_context_is_not_kept_and_its_span_names_stay_few() -> None:
    """Attack probe (hsec5): the drain keeps each job's context (``trace_context``) until
    it learns the run. 3 000 jobs, each under a new name of 2 000 characters and with
    100 kB of its own in its context: once learnt, at most one context is still alive
    (the last run, until the next), and the child spans carry about ``max_units``
    names (+ ``(other)``), each cut to 200 characters."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    gate = PulseGate(log_events=False, job_learning="background", max_units=50)
    otel.install(gate, meter_provider=MeterProvider(), tracer_provider=provider)
    tracer = provider.get_tracer("app")
    kept: list[weakref.ref[Blob]] = []
    names: set[Any] = set()
    try:
        for i in range(3000):
            blob = Blob()
            blob.data = bytearray(100_000)  # type: ignore[attr-defined]
            kept.append(weakref.ref(blob))
            token = context.attach(context.set_value("app.blob", blob))
            with tracer.start_as_current_span("task"), \
                    observe_job(f"user-{i}-" + "x" * 2000, gate=gate):
                pass
            context.detach(token)
            del blob
            if i % 100 == 99:  # (the exporter's own list let go, as a real one does)
                names.update(s.attributes["pulsegate.job.name"]
                             for s in spans_seen(gate, spans) if s.name.startswith("pulsegate "))
                spans.clear()
        gc.collect()
        assert sum(ref() is not None for ref in kept) <= 1
        # max_units kept names and (other); a one-shot name wins a slot only when its
        # sketch counters all collide (unit_names.py; hash-seeded: 0-1 of 3 000 here)
        assert names and len(names) <= 51 + 5 and max(map(len, names)) <= 200
        assert gate.stats()["internal_errors"] == 0
    finally:
        gate.close()
