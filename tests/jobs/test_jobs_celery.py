"""Celery end to end: a real worker process (``celery worker``, prefork, one child) on a
real Redis broker on loopback, started here; the test process is the producer. With
CI=true a missing redis-server fails the test (tests/services.py), never skips it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import redis_server

pytestmark = pytest.mark.service

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", params=["inline", "background"])
def worker(request: pytest.FixtureRequest) -> Iterator[Any]:
    """(the Celery app module, as the producer imports it) with a worker consuming, its
    gate learning jobs ``inline`` or in the ``background`` (``job_learning``)."""
    with redis_server() as redis:
        os.environ["JOBS_TEST_BROKER"] = redis.url
        os.environ["JOBS_TEST_LEARNING"] = request.param
        sys.modules.pop("jobs_celery_app", None)
        sys.path.insert(0, str(HERE))
        try:
            import jobs_celery_app as tasks
        finally:
            sys.path.remove(str(HERE))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]),
                   JOBS_TEST_WORKER="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobs_celery_app", "worker",
             "--pool=prefork", "--concurrency=1", "--loglevel=WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", "pulsegate-test@%h"],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert tasks.add.delay(1, 2).get(timeout=60) == 3, "the worker never answered"
            yield tasks
        finally:
            proc.terminate()
            try:
                out = proc.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate()[0]
            from pulsegate.jobs.celery import uninstrument

            uninstrument()
            sys.modules.pop("jobs_celery_app", None)
            os.environ.pop("JOBS_TEST_LEARNING", None)
            if out and b"Traceback" in out:
                print(out.decode(errors="replace")[-4000:])


def report(tasks: Any) -> dict[str, Any]:
    result: dict[str, Any] = tasks.report.delay().get(timeout=30)
    return result


def endpoint(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    found = [r for r in rows if r["endpoint"] == key]
    assert found, f"{key} not among {[r['endpoint'] for r in rows]}"
    return found[0]


def test_every_task_run_is_learnt_under_its_name_with_its_outcome(worker: Any) -> None:
    tasks = worker
    for i in range(3):
        assert tasks.add.delay(i, 1).get(timeout=30) == i + 1
    with pytest.raises(ValueError, match="no such invoice"):
        tasks.boom.delay().get(timeout=30)
    seen = report(tasks)
    assert endpoint(seen["endpoints"], "JOB jobs_celery_app.add")["requests"] >= 4
    assert endpoint(seen["endpoints"], "JOB jobs_celery_app.boom")["requests"] == 1
    names = seen["jobs"]["names"]
    assert names["jobs_celery_app.boom"]["outcomes"] == {"failure": 1}
    assert names["jobs_celery_app.add"]["outcomes"]["success"] >= 4
    assert seen["internal_errors"] == 0


def test_the_queue_wait_counts_from_the_publish_time(worker: Any) -> None:
    tasks = worker
    blocker = tasks.sleepy.delay(600)  # one worker child: the next task waits behind it
    queued = tasks.add.delay(2, 2)
    assert queued.get(timeout=30) == 4 and blocker.get(timeout=30) == 600
    seen = report(tasks)
    wait = seen["jobs"]["names"]["jobs_celery_app.add"]["last_wait_ms"]
    assert 400.0 <= wait <= 5000.0
    assert endpoint(seen["endpoints"], "QUEUE jobs_celery_app.add")["requests"] >= 1


def test_a_countdown_is_not_waiting(worker: Any) -> None:
    tasks = worker
    started = time.time()
    assert tasks.add.apply_async((5, 5), countdown=1.5).get(timeout=30) == 10
    assert time.time() - started >= 1.4
    wait = report(tasks)["jobs"]["names"]["jobs_celery_app.add"]["last_wait_ms"]
    assert 0.0 <= wait < 1000.0


def test_retries_are_counted_and_the_run_that_succeeds_knows_its_attempt(worker: Any) -> None:
    tasks = worker
    assert tasks.flaky.delay(2).get(timeout=30) == 2
    names = report(tasks)["jobs"]["names"]
    assert names["jobs_celery_app.flaky"]["outcomes"] == {"retry": 2, "success": 1}
    assert names["jobs_celery_app.flaky"]["retries"] == 2


def test_an_nplusone_inside_a_task_is_reported_against_the_task(worker: Any) -> None:
    tasks = worker
    assert tasks.authors_one_by_one.delay().get(timeout=30) == 20
    detections = [d for d in report(tasks)["detections"]
                  if d["endpoint"] == "JOB jobs_celery_app.authors_one_by_one"]
    assert detections and detections[0]["kind"] == "n_plus_one"
    assert detections[0]["count"] >= 20 and detections[0]["suggestion"]


def test_the_jobs_record_reaches_the_trace_the_producer_started(worker: Any) -> None:
    """The worker runs OpenTelemetry's Celery instrumentation with an in-memory exporter,
    and the producer (this process) its own: the trace goes from the producer's
    ``apply_async`` span to the worker's ``run`` span, and the job's figures reach it --
    inline on the ``run`` span, in the background on a child of it made after the
    ``run`` span ended (before: lost)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tasks = worker
    produced = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(produced))
    producer = CeleryInstrumentor()
    producer.instrument(tracer_provider=provider)
    try:
        assert tasks.authors_one_by_one.delay().get(timeout=30) == 20
    finally:
        producer.uninstrument()
    (publish,) = [s for s in produced.get_finished_spans() if s.name.startswith("apply_async/")]
    seen = tasks.spans.delay().get(timeout=30)
    name = "jobs_celery_app.authors_one_by_one"
    (run,) = [s for s in seen if s["name"] == f"run/{name}"
              and s["trace_id"] == publish.context.trace_id]
    (mine,) = [s for s in seen if s["attributes"].get("pulsegate.job.name") == name
               and s["trace_id"] == publish.context.trace_id]
    attrs = mine["attributes"]
    assert attrs["pulsegate.job.outcome"] == "success" and attrs["pulsegate.query_count"] == 21
    assert attrs["pulsegate.job.queue_wait_ms"] >= 0.0 and "pulsegate.anomaly_score" in attrs
    assert attrs["pulsegate.nplusone"] >= 1 and "pulsegate.query_detection" in mine["events"]
    if mine is not run:  # background: a child of the task's span, within it
        assert mine["name"] == f"pulsegate JOB {name}" and mine["parent_id"] == run["span_id"]
        assert run["start"] - 5_000_000 <= mine["start"] <= mine["end"] <= run["end"] + 5_000_000
        assert tasks.LEARNING == "background"
    else:
        assert tasks.LEARNING == "inline"


def test_a_queue_no_worker_reads_stalls_as_the_producer_sees_it(worker: Any) -> None:
    """Tasks published to a queue the worker does not consume (as if its worker died):
    the producer's gate sees the length, the oldest message's publish time (the
    ``pulsegate_published`` header) and flags the stall -- nothing from a worker."""
    import uuid

    from pulsegate.engine import PulseGate
    from pulsegate.jobs.celery import watch_queues

    tasks = worker
    dead = f"nobody-{uuid.uuid4().hex[:8]}"
    gate = PulseGate(log_events=False, queue_stall_seconds=1.0)
    try:
        published = time.time()
        for i in range(4):
            tasks.add.apply_async((i, i), queue=dead)
        broker = watch_queues(tasks.app, gate=gate, queues=[dead, "celery"], interval=3600.0)
        time.sleep(0.3)
        assert broker.poll(gate) == []
        row = gate.stats()["job_queues"][dead]
        assert row["length"] == 4 and row["head_age_s"] >= 0.25  # from the publish time
        assert row["head_age_s"] <= time.time() - published + 0.05
        time.sleep(1.0)
        flagged = broker.poll(gate)
        assert [i["endpoint"] for i in flagged] == [f"QUEUE {dead}"]
        assert flagged[0]["metric"] == "starvation"
        assert not gate.stats()["job_queues"]["celery"]["stalled"]  # the live queue
    finally:
        gate.close()
        client = broker.client if "broker" in locals() and broker is not None else None
        if client is not None:
            client.delete(dead)


def test_a_low_priority_starved_in_its_own_list_stalls_under_its_name(worker: Any) -> None:
    """Celery on Redis keeps a message sent with a priority in a list of its own
    (kombu's ``<queue>\\x06\\x16<step>``): three priority-9 tasks on a queue nobody
    consumes wait there, not in the queue's list. The watcher reads that list under
    ``"<queue> [priority 9]"`` and flags its stall; the priority lists that never held a
    message stay out of the stats."""
    import uuid

    from pulsegate.engine import PulseGate
    from pulsegate.jobs.celery import watch_queues

    tasks = worker
    dead = f"nobody-{uuid.uuid4().hex[:8]}"
    gate = PulseGate(log_events=False, queue_stall_seconds=1.0)
    broker = None
    try:
        for i in range(3):
            tasks.add.apply_async((i, i), queue=dead, priority=9)
        broker = watch_queues(tasks.app, gate=gate, queues=[dead], interval=3600.0)
        assert broker.poll(gate) == []
        rows = gate.stats()["job_queues"]
        assert rows[f"{dead} [priority 9]"]["length"] == 3
        assert rows[dead]["length"] == 0  # the queue's own list is empty
        assert f"{dead} [priority 3]" not in rows and f"{dead} [priority 6]" not in rows
        time.sleep(1.2)
        flagged = broker.poll(gate)
        assert [i["endpoint"] for i in flagged] == [f"QUEUE {dead} [priority 9]"]
    finally:
        gate.close()
        if broker is not None:
            broker.client.delete(*(p.key for p in broker.probes))
