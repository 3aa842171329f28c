"""The scheduler's jobs under a job that never returns (a span exporter whose collector
never answers, a webhook that hangs, an alert sink blocked on a lock): the other jobs go
on, the stuck one is counted once and not started again while it runs, and
``gate.close()`` stays bounded. Real threads; every wait is on an event, with limits far
above what the machine needs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsegate.engine import PulseGate
from pulsegate.scheduler import Scheduler

#: What any wait on an event may take here before the test calls it a hang.
PATIENCE = 20.0


class Stuck:
    """A job that blocks until released; ``entered`` counts its starts."""

    def __init__(self) -> None:
        self.entered = 0
        self.inside = threading.Event()
        self.release = threading.Event()
        self.again = threading.Event()

    def __call__(self) -> None:
        self.entered += 1
        if self.entered > 1:
            self.again.set()
        self.inside.set()
        self.release.wait(PATIENCE * 3)


class Counting:
    """A job that sets ``reached`` once it ran ``times`` times."""

    def __init__(self, times: int) -> None:
        self.runs, self.times = 0, times
        self.reached = threading.Event()

    def __call__(self) -> None:
        self.runs += 1
        if self.runs >= self.times:
            self.reached.set()


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    job = Stuck()
    yield job
    job.release.set()


def test_a_job_that_never_returns_stops_no_other_job(stuck: Stuck) -> None:
    """Before: every job ran on the scheduler's thread, so one stuck job stopped all the
    others (snapshots, drains, starvation checks) for as long as it hung."""
    scheduler = Scheduler(tick=0.01, limit=1.0)  # (a trivial job never waits that long)
    other = Counting(times=5)
    scheduler.every(0.01, stuck, "stuck", first_in=0)
    scheduler.every(0.01, other, "other")
    scheduler.ensure_started()
    try:
        assert stuck.inside.wait(PATIENCE)
        assert other.reached.wait(PATIENCE), "a stuck job stopped the others"
        # not started again while its run goes on; its overrun counted once
        assert stuck.entered == 1
        assert scheduler.faults.by_kind == {"scheduler job stuck:TimeoutError": 1}
        assert scheduler.stats()["overrunning"] == ["stuck"]
        stuck.release.set()
        assert stuck.again.wait(PATIENCE), "a job that returned late never ran again"
    finally:
        scheduler.stop()


def test_run_pending_waits_at_most_the_limit_for_each_job(stuck: Stuck) -> None:
    """Driven by hand (as tests and shutdown do): the due jobs after a stuck one still
    run, in order, and a second pass skips the stuck one without waiting for it."""
    scheduler = Scheduler(limit=1.0)
    other = Counting(times=2)
    scheduler.every(1.0, stuck, "stuck")
    scheduler.every(1.0, other, "other")
    now = scheduler.clock()
    assert scheduler.run_pending(now + 1) == 2
    assert stuck.inside.wait(PATIENCE)  # (left on its runner, which may start it late)
    assert other.runs == 1 and stuck.entered == 1
    assert scheduler.run_pending(now + 2) == 2
    assert other.runs == 2 and stuck.entered == 1
    assert scheduler.overruns == 1
    stuck.release.set()


def test_a_job_that_raises_is_counted_and_the_others_run() -> None:
    scheduler = Scheduler()
    other = Counting(times=1)

    def broken() -> None:
        raise ValueError("boom")

    scheduler.every(1.0, broken, "broken")
    scheduler.every(1.0, other, "other")
    scheduler.run_pending(scheduler.clock() + 1)
    assert other.runs == 1
    assert scheduler.faults.by_kind == {"scheduler job broken:ValueError": 1}
    scheduler.stop()


def test_closing_a_gate_is_bounded_when_a_job_never_returns(stuck: Stuck) -> None:
    """``gate.close()`` (ASGI lifespan shutdown, atexit) flushes every scheduled job.
    Before: it ran them on the closing thread, so a job that never returns kept the
    process from ever exiting."""
    gate = PulseGate(log_events=False)
    gate.scheduler.close_limit = 0.5
    gate.scheduler.every(60.0, stuck, "stuck")
    closed = threading.Event()

    def close() -> None:
        gate.close()
        closed.set()

    threading.Thread(target=close, daemon=True).start()
    assert stuck.inside.wait(PATIENCE)
    assert closed.wait(PATIENCE), "gate.close() waited for a job that never returns"
    assert gate.stats()["scheduler"]["overrunning"] == []  # (left before its limit)


def test_closing_a_gate_is_bounded_when_an_alert_sink_never_returns() -> None:
    """The final alert delivery calls the application's ``alert_callback``; one that
    blocks (on a lock, a network call without a timeout) must not hold the close."""
    inside, release = threading.Event(), threading.Event()

    def sink(alert: object) -> None:
        inside.set()
        release.wait(PATIENCE * 3)

    gate = PulseGate(log_events=False, alert_callback=sink)
    gate.scheduler.close_limit = 0.5
    closed = threading.Event()
    try:
        gate.ops.alerts.raise_alert("probe", "subject", "warning", "a probe alert")
        threading.Thread(target=lambda: (gate.close(), closed.set()), daemon=True).start()
        assert inside.wait(PATIENCE)
        assert closed.wait(PATIENCE), "gate.close() waited for an alert sink that hangs"
    finally:
        release.set()


EXIT_WITH_A_HANGING_SINK = """
import threading
from pulsegate.engine import PulseGate

def sink(alert):
    print("inside", flush=True)
    threading.Event().wait()  # never returns

gate = PulseGate(log_events=False, alert_callback=sink)
gate.ops.alerts.raise_alert("probe", "subject", "warning", "a probe alert")
# no gate.close(): a WSGI, Flask or Django process exits through atexit
"""


def test_a_process_exits_when_its_alert_sink_never_returns() -> None:
    """Where nothing calls ``gate.close()`` (WSGI, Flask, Django) the registry's atexit
    hook delivers the last alerts. Before: on the exiting thread with no bound, so an
    ``alert_callback`` that never returns kept the process from ever exiting."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", EXIT_WITH_A_HANGING_SINK], env=env,
                          capture_output=True, text=True, timeout=PATIENCE * 3)
    assert done.stdout.startswith("inside"), done.stderr


def test_stopping_the_scheduler_during_a_long_job_is_not_an_overrun(stuck: Stuck) -> None:
    """A job still running when the thread is stopped (``gate.close()`` while a slow job
    runs) has not overrun its limit: its wait ended with the stop, not with the limit.
    (Seen in CI: a slow behaviour job under tracemalloc, then a close, counted a fault.)"""
    scheduler = Scheduler(tick=0.01, limit=PATIENCE * 3)
    scheduler.every(0.01, stuck, "slow")
    scheduler.ensure_started()
    assert stuck.inside.wait(PATIENCE)
    scheduler.stop()
    stuck.release.set()
    assert scheduler.overruns == 0 and scheduler.faults.total == 0, scheduler.faults.by_kind
