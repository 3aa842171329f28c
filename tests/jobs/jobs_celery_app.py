"""The Celery app of tests/jobs/test_jobs_celery.py: imported by the test (the producer)
and by the real worker process it starts (``celery -A jobs_celery_app worker``). The
broker and result backend are the test's own Redis (``JOBS_TEST_BROKER``)."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool

from pulsegate.engine import PulseGate
from pulsegate.export import otel
from pulsegate.jobs import get_gate, set_gate
from pulsegate.jobs.celery import instrument
from pulsegate.jobs.runs import deferred_of

BROKER = os.environ.get("JOBS_TEST_BROKER", "redis://127.0.0.1:6399/0")

app = Celery("pulsegate_jobs_test", broker=BROKER, backend=BROKER)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

#: "inline" or "background" (``job_learning``): the test runs every case with both
LEARNING = os.environ.get("JOBS_TEST_LEARNING", "inline")
set_gate(PulseGate(warmup=2, log_events=False, exclude_paths=[], job_learning=LEARNING,
                   state_dir=os.environ.get("JOBS_TEST_STATE_DIR")))
instrument(app)
if os.environ.get("JOBS_TEST_WORKER"):  # the worker traces its tasks (the producer: the test)
    SPANS = InMemorySpanExporter()
    TRACING = TracerProvider()
    TRACING.add_span_processor(SimpleSpanProcessor(SPANS))
    CeleryInstrumentor().instrument(tracer_provider=TRACING)
    otel.install(get_gate(), tracer_provider=TRACING)

engine = create_engine("sqlite://", poolclass=StaticPool,
                       connect_args={"check_same_thread": False})
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT)"))
    conn.execute(text("INSERT INTO author (id, name) VALUES " +
                      ", ".join(f"({i}, 'a{i}')" for i in range(20))))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def sleepy(ms: float) -> float:
    time.sleep(ms / 1000.0)
    return ms


@app.task(bind=True, max_retries=3)
def flaky(self: Any, fail_times: int) -> int:
    if self.request.retries < fail_times:
        raise self.retry(countdown=0)
    return int(self.request.retries)


@app.task
def boom() -> None:
    raise ValueError("no such invoice")


@app.task
def authors_one_by_one() -> int:
    """An N+1 inside a job: one statement per author, from one call site."""
    names = 0
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM author"))]
        for author_id in ids:
            conn.execute(text("SELECT name FROM author WHERE id = :id"), {"id": author_id})
            names += 1
    return names


@app.task
def report() -> dict[str, Any]:
    """What the worker's gate learnt, for the test to read (in the background: once the
    scheduler's drain has learnt the runs before this one)."""
    gate = get_gate()
    if LEARNING == "background":
        deferred_of(gate).drain()
    stats = gate.stats()
    return {"endpoints": gate.endpoints(), "units": stats.get("units"),
            "jobs": stats.get("jobs"), "detections": [dict(d) for d in gate.detections],
            "internal_errors": stats["internal_errors"], "pid": os.getpid()}


@app.task
def spans() -> list[dict[str, Any]]:
    """The spans the worker's tasks finished, as the exporter got them (in the
    background: once the drain has learnt the runs before this one)."""
    if LEARNING == "background":
        deferred_of(get_gate()).drain()
    return [{"name": s.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
             "parent_id": s.parent.span_id if s.parent else None,
             "start": s.start_time, "end": s.end_time, "attributes": dict(s.attributes or {}),
             "events": [e.name for e in s.events]}
            for s in SPANS.get_finished_spans()]
