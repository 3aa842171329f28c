"""``pulsegate.jobs.observe_job``: a block (sync, async) and a decorator (function,
coroutine function), learnt under ``JOB <name>``; the queue wait under ``QUEUE <name>``;
failures named and re-raised; the gate chosen when none is given."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from jobs_learnt import MODES, learnt

import pulsegate.jobs as jobs
from fakeclock import FakeClock
from pulsegate.context import query_sink
from pulsegate.engine import PulseGate
from pulsegate.jobs import get_gate, observe_job, set_gate, tracker_of
from pulsegate.queries.events import QueryEvent


@pytest.fixture(params=MODES)
def gate(request: pytest.FixtureRequest) -> Iterator[tuple[PulseGate, FakeClock]]:
    clock = FakeClock()
    g = PulseGate(clock=clock, cpu_clock=clock, wall=lambda: 1.7e9 + clock.t,
                  job_learning=request.param)
    set_gate(g)
    yield g, clock
    set_gate(None)


def test_a_decorated_function_is_a_job_named_after_it(gate: tuple[PulseGate, FakeClock]) -> None:
    g, clock = gate

    @observe_job()
    def resize(n: int) -> int:
        clock.t += 0.04
        return n * 2

    assert resize(21) == 42 and resize.__name__ == "resize"
    key = f"JOB {__name__}.test_a_decorated_function_is_a_job_named_after_it.<locals>.resize"
    model = learnt(g).baselines.peek(key)
    assert model is not None and model.n == 1
    assert model.predict()[0] == pytest.approx(40.0)


def test_a_coroutine_function_is_measured_around_its_await(
        gate: tuple[PulseGate, FakeClock]) -> None:
    g, clock = gate

    @observe_job("crawl")
    async def crawl() -> str:
        await asyncio.sleep(0)
        clock.t += 0.3
        return "done"

    assert asyncio.run(crawl()) == "done"
    assert learnt(g).baselines.peek("JOB crawl").predict()[0] == pytest.approx(300.0)  # type: ignore[union-attr]


def test_blocks_sync_and_async_with_the_queue_wait_and_retries(
        gate: tuple[PulseGate, FakeClock]) -> None:
    g, clock = gate
    with observe_job("feed", queue_wait_ms=1500.0, retries=2) as scope:
        clock.t += 0.01
    # the record exists when the run is learnt on this thread (inline), not otherwise
    assert (scope.record is not None) == (g.config.units.job_learning == "inline")
    assert scope.run is not None
    assert scope.run.retries == 2 and scope.run.queue_wait_ms == 1500.0
    assert learnt(g).baselines.peek("QUEUE feed").predict()[0] == pytest.approx(1500.0)  # type: ignore[union-attr]
    assert tracker_of(g).stats()["names"]["feed"]["last_wait_ms"] == 1500.0

    async def block() -> None:
        async with observe_job("feed") as inner:
            inner.outcome = "retry"

    asyncio.run(block())
    assert learnt(g).stats()["units"]["JOB"]["runs"] == {"success": 1, "retry": 1}
    assert tracker_of(g).stats()["names"]["feed"]["retries"] == 1


def test_a_failing_job_raises_as_before_and_is_recorded_as_a_failure(
        gate: tuple[PulseGate, FakeClock]) -> None:
    g, _ = gate
    failed: list[Any] = []
    g.unit_listeners.append(lambda record, run: failed.append((record.status, record.error)))

    @observe_job("charge")
    def charge() -> None:
        raise ConnectionError("card service down")

    with pytest.raises(ConnectionError, match="card service down"):
        charge()
    learnt(g)
    assert failed == [(500, "ConnectionError")]


def test_sql_in_a_job_is_the_jobs_and_an_nplusone_names_it(
        gate: tuple[PulseGate, FakeClock]) -> None:
    g, _ = gate
    with observe_job("digest"):
        sink = query_sink.get()
        assert sink is not None
        for i in range(6):
            sink.add_query(QueryEvent(sql=f"SELECT * FROM book WHERE author_id = {i}",
                                      duration_ms=0.3, call_site="digest.py:9 in digest"))
    assert [d["endpoint"] for d in learnt(g).detections] == ["JOB digest"]
    assert g.query_insights()[0]["endpoints"] == ["JOB digest"]


def test_a_block_needs_a_name() -> None:
    with pytest.raises(TypeError, match="name"), observe_job():
        pass


def test_without_a_gate_set_one_is_built_from_the_environment_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_gate(None)
    monkeypatch.delitem(sys.modules, "django", raising=False)  # no Django project here
    monkeypatch.setenv("PULSEGATE_MAX_UNITS", "3")
    try:
        first = get_gate()
        assert first is get_gate() and first.config.max_units == 3
    finally:
        set_gate(None)
        first.close()


def test_a_bad_environment_leaves_the_job_running_unmeasured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_gate(None)
    monkeypatch.delitem(sys.modules, "django", raising=False)
    monkeypatch.setenv("PULSEGATE_MAX_UNITS", "many")

    @observe_job("still_runs")
    def job() -> int:
        return 7

    assert job() == 7
    assert jobs._gate is None  # nothing was built
