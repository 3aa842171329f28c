"""``job_learning="background"``: the worker's thread only closes the run and queues it;
the scheduler's drain learns the same figures through the same steps -- the model, the
queue wait, the tracker, SQL detections, failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fakeclock import FakeClock
from pulsegate.context import current, query_sink
from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job, tracker_of
from pulsegate.jobs.deferred import MAX_PENDING
from pulsegate.jobs.runs import deferred_of
from pulsegate.queries import eager
from pulsegate.queries.events import QueryEvent


def make_gate(learning: str) -> tuple[PulseGate, FakeClock]:
    clock = FakeClock()
    return PulseGate(clock=clock, cpu_clock=clock, wall=lambda: 1.7e9 + clock.t,
                     job_learning=learning), clock


@pytest.fixture()
def gates() -> Iterator[dict[str, tuple[PulseGate, FakeClock]]]:
    made = {"inline": make_gate("inline"), "background": make_gate("background")}
    yield made
    for g, _ in made.values():
        g.close()


def run_jobs(g: PulseGate, clock: FakeClock) -> list[Any]:
    """The same jobs on either gate: waits, a retry, a failure, an N+1."""
    seen: list[Any] = []
    g.unit_listeners.append(lambda record, run: seen.append((record.route, record.status)))
    for i in range(20):
        with observe_job("thumbs", gate=g, queue_wait_ms=100.0 + i):
            clock.t += 0.05 + 0.001 * i
    with observe_job("thumbs", gate=g) as scope:
        scope.outcome = "retry"
    with pytest.raises(KeyError), observe_job("charge", gate=g):
        raise KeyError("card")
    with observe_job("digest", gate=g):
        sink = query_sink.get()
        assert sink is not None
        for i in range(6):
            sink.add_query(QueryEvent(sql=f"SELECT * FROM book WHERE author_id = {i}",
                                      duration_ms=0.3, call_site="digest.py:9 in digest"))
    return seen


def summary(g: PulseGate) -> dict[str, Any]:
    rows = {r["endpoint"]: r["requests"] for r in g.endpoints()}
    names = tracker_of(g).stats()["names"]
    return {"rows": rows, "runs": g.stats()["units"]["JOB"]["runs"],
            "thumbs": {k: names["thumbs"][k] for k in ("intervals", "last_wait_ms", "outcomes")},
            "detections": [d["endpoint"] for d in g.detections],
            "predicted": round(g.baselines.peek("JOB thumbs").predict()[0], 6)}  # type: ignore[union-attr]


def test_background_learning_learns_what_inline_learns(
        gates: dict[str, tuple[PulseGate, FakeClock]]) -> None:
    inline, clock = gates["inline"]
    seen_inline = run_jobs(inline, clock)
    background, clock2 = gates["background"]
    seen_background = run_jobs(background, clock2)
    assert seen_background == []  # nothing learnt on the job's thread
    assert not [r for r in background.endpoints() if r["endpoint"].startswith("JOB")]
    assert deferred_of(background).drain() == 2 * 23
    assert seen_background == seen_inline
    assert summary(background) == summary(inline)


def test_the_queue_never_grows_past_its_bound_nor_loses_a_run() -> None:
    g, clock = make_gate("background")
    try:
        for _ in range(MAX_PENDING + 10):
            with observe_job("tick", gate=g):
                clock.t += 0.001
            assert len(deferred_of(g).pending) <= MAX_PENDING
        deferred_of(g).drain()
        assert g.stats()["units"]["JOB"]["runs"] == {"success": MAX_PENDING + 10}
    finally:
        g.close()


def test_a_long_job_is_seen_started_before_it_ends() -> None:
    """Starvation and the backlog read the starts: a job still running at a drain is
    learnt started (its wait, the tracker's start) then, and ended at a later drain."""
    g, clock = make_gate("background")
    try:
        with observe_job("export", gate=g, queue_wait_ms=250.0):
            clock.t += 60.0
            deferred_of(g).drain()
            names = tracker_of(g).stats()["names"]
            assert names["export"]["last_wait_ms"] == 250.0 and not names["export"]["outcomes"]
            assert [r["requests"] for r in g.endpoints() if r["endpoint"] == "QUEUE export"] == [1]
            clock.t += 60.0
        assert deferred_of(g).drain() == 1  # its end
        assert tracker_of(g).stats()["names"]["export"]["outcomes"] == {"success": 1}
        assert g.stats()["units"]["JOB"]["runs"] == {"success": 1}
        rows = {r["endpoint"]: r for r in g.endpoints()}
        assert rows["JOB export"]["requests"] == 1
    finally:
        g.close()


def test_in_a_background_job_current_is_the_job_and_its_sql_and_eager_loads_its_own() -> None:
    """The job's request context is made when something asks for it: pulsegate.context.current()
    inside the job, the SQL hooks' statements and what they recorded against the sink (an
    unused eager load) all reach the job's record at the drain."""
    clock = FakeClock()
    g = PulseGate(clock=clock, cpu_clock=clock, wall=lambda: 1.7e9 + clock.t,
                  job_learning="background", unused_eager_loads=True)
    try:
        assert current() is None
        with observe_job("digest", gate=g):
            ctx = current()
            assert ctx is not None and (ctx.method, ctx.route) == ("JOB", "digest")
            sink = query_sink.get()
            assert sink is not None
            sink.add_query(QueryEvent(sql="SELECT * FROM author", duration_ms=0.4,
                                      call_site="digest.py:4 in digest"))
            eager.record(sink, 1, eager.EagerLoad("Author.books", "selectinload(Author.books)",
                                                  "SELECT * FROM book WHERE author_id IN (?)",
                                                  "digest.py:4 in digest", "sqlite", "sqlalchemy"))
            clock.t += 0.02
        assert current() is None  # the job ended: nothing reads it as running
        deferred_of(g).drain()
        found = [(d["endpoint"], d["kind"]) for d in g.detections]
        assert ("JOB digest", "unused_eager_load") in found
        assert {r["endpoint"]: r["requests"] for r in g.endpoints()}["JOB digest"] == 1
    finally:
        g.close()


def test_a_job_without_sql_is_learnt_the_same_with_or_without_a_query_sink() -> None:
    """query_analysis off: the run does not collect SQL, and is learnt all the same."""
    clock = FakeClock()
    g = PulseGate(clock=clock, cpu_clock=clock, wall=lambda: 1.7e9 + clock.t,
                  job_learning="background", query_analysis=False)
    try:
        with observe_job("plain", gate=g):
            clock.t += 0.01
        deferred_of(g).drain()
        assert g.stats()["units"]["JOB"]["runs"] == {"success": 1}
    finally:
        g.close()


def test_background_is_the_default_and_inline_stays_selectable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The default learns jobs on the scheduler's thread (the worker's thread keeps a
    queued run); ``inline`` is chosen by keyword or environment; anything else is a
    ConfigError naming the key, the value and what is allowed."""
    from pulsegate import ConfigError
    from pulsegate.jobs.deferred import JobRun
    from pulsegate.units import UnitRun

    default = PulseGate(log_events=False)
    inline = PulseGate(log_events=False, job_learning="inline")
    monkeypatch.setenv("PULSEGATE_JOB_LEARNING", "inline")
    from_env = PulseGate.from_env(log_events=False)
    try:
        assert default.config.units.job_learning == "background"
        with observe_job("mail.send", gate=default) as scope:
            assert isinstance(scope.run, JobRun)
        for gate in (inline, from_env):
            with observe_job("mail.send", gate=gate) as scope:
                assert isinstance(scope.run, UnitRun)
            assert scope.record is not None
    finally:
        for gate in (default, inline, from_env):
            gate.close()
    with pytest.raises(ConfigError) as raised:
        PulseGate(job_learning="sometimes")
    message = str(raised.value)
    assert "job_learning" in message and "sometimes" in message
    assert "background" in message and "inline" in message
