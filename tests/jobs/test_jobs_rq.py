"""RQ end to end on a real Redis on loopback: pulsegate's SimpleWorker (jobs measured in
process, SQL included) and Worker (a work horse forked per job, recorded from the
worker's side). With CI=true a missing redis-server fails the test, never skips it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jobs_rq_tasks as tasks
import pytest
import redis
from jobs_learnt import StuckExporter, learnt
from rq import Queue, Retry

from pulsegate.engine import PulseGate
from pulsegate.jobs import rq as pg_rq
from pulsegate.jobs import tracker_of
from services import RedisServer, redis_server

pytestmark = pytest.mark.service


class SimpleWorker(pg_rq.SimpleWorker):
    """pulsegate's worker without RQ's command channel: a burst worker that stops soon
    after subscribing waits up to 60 s joining redis-py's pub/sub thread (still in its
    first 60 s read), which is RQ's and redis-py's, not what is tested here."""

    def subscribe(self) -> None:
        pass


class Worker(pg_rq.Worker):
    __doc__ = SimpleWorker.__doc__

    def subscribe(self) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        os.environ["JOBS_TEST_RQ_REDIS"] = s.url
        yield s
        os.environ.pop("JOBS_TEST_RQ_REDIS", None)


@pytest.fixture()
def queue(server: RedisServer) -> Iterator[Queue]:
    conn = redis.Redis.from_url(server.url)
    conn.flushdb()
    yield Queue(f"q{uuid.uuid4().hex[:8]}", connection=conn)
    conn.close()


@pytest.fixture()
def gate() -> Iterator[PulseGate]:
    g = PulseGate(log_events=False)
    from pulsegate.autoinstrument import instrument_orms

    instrument_orms(g)  # SQLAlchemy's hooks, as a worker's first job would
    yield g
    g.close()


def rows(gate: PulseGate) -> dict[str, Any]:
    return {row["endpoint"]: row for row in learnt(gate).endpoints()}


def test_simple_worker_measures_each_job_with_its_outcome_and_wait(
        queue: Queue, gate: PulseGate) -> None:
    for i in range(3):
        queue.enqueue(tasks.add, i, 1)
    queue.enqueue(tasks.boom)
    time.sleep(0.3)  # the jobs wait in their queue
    SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
    seen = rows(gate)
    assert seen["JOB jobs_rq_tasks.add"]["requests"] == 3
    assert seen["JOB jobs_rq_tasks.boom"]["requests"] == 1
    stats = tracker_of(gate).stats()["names"]
    assert stats["jobs_rq_tasks.add"]["outcomes"] == {"success": 3}
    assert stats["jobs_rq_tasks.boom"]["outcomes"] == {"failure": 1}
    assert stats["jobs_rq_tasks.add"]["last_wait_ms"] >= 250.0
    assert "QUEUE jobs_rq_tasks.add" in seen
    assert gate.stats()["internal_errors"] == 0


def test_a_failure_is_named_after_its_exception(queue: Queue, gate: PulseGate) -> None:
    failures: list[Any] = []
    gate.unit_listeners.append(
        lambda r, run: failures.append((r.route, r.error)) if r.status >= 500 else None)
    queue.enqueue(tasks.boom)
    SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
    learnt(gate)
    assert failures == [("jobs_rq_tasks.boom", "ValueError")]


def test_retried_attempts_are_retries_and_the_last_one_succeeds(
        queue: Queue, gate: PulseGate) -> None:
    queue.enqueue(tasks.flaky, f"k{uuid.uuid4().hex}", 2, retry=Retry(max=3))
    SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
    stats = tracker_of(learnt(gate)).stats()["names"]["jobs_rq_tasks.flaky"]
    assert stats["outcomes"] == {"retry": 2, "success": 1} and stats["retries"] == 2


def test_an_nplusone_in_a_job_is_reported_against_the_job(
        queue: Queue, gate: PulseGate) -> None:
    queue.enqueue(tasks.titles_one_by_one)
    SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
    found = [d for d in learnt(gate).detections
             if d["endpoint"] == "JOB jobs_rq_tasks.titles_one_by_one"]
    assert found and found[0]["kind"] == "n_plus_one" and found[0]["count"] >= 12


def test_the_forking_worker_records_each_job_from_its_side(
        queue: Queue, gate: PulseGate) -> None:
    records: list[Any] = []
    gate.unit_listeners.append(lambda r, run: records.append(r))
    queue.enqueue(tasks.burn, 60)
    queue.enqueue(tasks.boom)
    Worker([queue], connection=queue.connection, gate=gate).work(burst=True)
    jobs = {r.route: r for r in records if r.method == "JOB"}
    burn = jobs["jobs_rq_tasks.burn"]
    assert burn.status == 200 and 55.0 <= burn.duration_ms <= 2000.0
    assert burn.cpu_ms is not None and burn.cpu_ms >= 50.0  # the horse's own CPU (wait4)
    boom = jobs["jobs_rq_tasks.boom"]
    assert (boom.status, boom.error) == (500, "ValueError")
    assert tracker_of(gate).stats()["names"]["jobs_rq_tasks.burn"]["outcomes"] == {"success": 1}


def test_a_forged_function_name_is_not_kept_whole_until_the_drain(queue: Queue) -> None:
    """Attack probe (hsec5): whoever can enqueue writes ``func_name`` (RQ imports it only
    to run it). In the background a run keeps its name until the drain (up to
    MAX_PENDING runs while the drain is slow or stuck): with the scheduler's drain stuck
    in a listener, 100 jobs named by 100 kB each kept their whole name queued (10 MB).
    A name is learnt and exported as its first 200 characters; only those are kept."""
    from pulsegate.jobs.runs import deferred_of

    gate = PulseGate(log_events=False, job_learning="background")
    exporter = StuckExporter(gate)
    try:
        queue.enqueue(tasks.add, 1, 1)
        SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
        assert exporter.stuck.wait(5.0)
        for i in range(100):
            queue.enqueue(f"jobs_rq_tasks.{i}" + "x" * 100_000)
        SimpleWorker([queue], connection=queue.connection, gate=gate).work(burst=True)
        queued = deferred_of(gate).pending
        assert len(queued) == 100
        assert sum(len(str(run.name)) for run in queued) <= 100 * 200
        exporter.release.set()
        names = tracker_of(learnt(gate)).stats()["names"]
        assert len(names) == 101 and max(map(len, names)) <= 200
        assert gate.stats()["internal_errors"] == 0
    finally:
        exporter.release.set()
        gate.close()
