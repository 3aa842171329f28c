"""Celery in-process (``task.apply()``: the worker's tracer without the broker): what a
run measures, which calls are runs, and what ``uninstrument`` leaves. The real worker
is in test_jobs_celery.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, Task, signals
from celery.exceptions import Ignore
from jobs_learnt import MODES, Seen, StuckExporter

from pulsegate.engine import PulseGate
from pulsegate.jobs import celery as pg_celery


@pytest.fixture(params=MODES)
def app_gate(request: pytest.FixtureRequest) -> Iterator[tuple[Celery, PulseGate, Seen]]:
    """An app instrumented against a gate learning jobs in the background or inline;
    what its unit listeners were given."""
    app = Celery("calls", broker="memory://")
    app.conf.task_ignore_result = True
    gate = PulseGate(log_events=False, job_learning=request.param)
    seen = Seen(gate)
    pg_celery.instrument(app, gate)
    try:
        yield app, gate, seen
    finally:
        pg_celery.uninstrument()
        gate.close()


def jobs(seen: Seen) -> list[tuple[str, int]]:
    return [(route, status) for route, status, _ in seen]


def test_the_run_is_the_tasks_body_not_what_other_receivers_do(app_gate: Any) -> None:
    """Another library's ``task_prerun`` receiver (connected after ``instrument``) that
    takes 60 ms is not the job's execution time: the body takes none."""
    app, gate, seen = app_gate

    @app.task(name="calls.quick")
    def quick() -> int:
        return 1

    def slow_receiver(**kwargs: Any) -> None:
        time.sleep(0.06)

    signals.task_prerun.connect(slow_receiver, weak=False, dispatch_uid="test.slow")
    try:
        for _ in range(3):
            assert quick.apply().get() == 1
    finally:
        signals.task_prerun.disconnect(dispatch_uid="test.slow")
    assert jobs(seen) == [("calls.quick", 200)] * 3
    assert max(ms for _, _, ms in seen) < 30.0


def test_direct_calls_are_not_runs_and_every_base_class_is_measured_once(
        app_gate: Any) -> None:
    app, gate, seen = app_gate

    calls: list[str] = []

    class Audited(Task):  # type: ignore[misc]
        """A user's base class (from celery.Task, not the app's) with its own __call__."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(self.name)
            return super().__call__(*args, **kwargs)

    @app.task(name="calls.double", base=Audited)
    def double(n: int) -> int:
        return 2 * n

    @app.task(name="calls.outer")
    def outer(n: int) -> int:
        return double(n) + double(n + 1)  # direct calls: part of outer's run

    assert double(4) == 8  # a plain call: no run
    assert jobs(seen) == []
    assert outer.apply((1,)).get() == 6
    assert double.apply((5,)).get() == 10
    assert jobs(seen) == [("calls.outer", 200), ("calls.double", 200)]
    assert calls == ["calls.double"] * 4
    assert gate.stats()["internal_errors"] == 0


def test_outcomes_are_read_off_the_body(app_gate: Any) -> None:
    app, gate, seen = app_gate

    @app.task(name="calls.boom")
    def boom() -> None:
        raise KeyError("no such invoice")

    @app.task(name="calls.skip")
    def skip() -> None:
        raise Ignore()

    with pytest.raises(KeyError):
        boom.apply(throw=True)
    skip.apply()
    assert jobs(seen) == [("calls.boom", 500), ("calls.skip", 200)]
    names = gate.stats()["jobs"]["names"]
    assert names["calls.boom"]["outcomes"] == {"failure": 1}
    assert names["calls.skip"]["outcomes"] == {"success": 1}


def test_after_uninstrument_tasks_run_unmeasured_and_a_second_instrument_measures_once(
        app_gate: Any) -> None:
    app, gate, seen = app_gate

    @app.task(name="calls.add")
    def add(x: int, y: int) -> int:
        return x + y

    pg_celery.instrument(app, gate)  # replaces the first
    assert add.apply((1, 2)).get() == 3
    assert jobs(seen) == [("calls.add", 200)]
    pg_celery.uninstrument()
    assert add.apply((1, 2)).get() == 3 and add(2, 2) == 4
    assert jobs(seen) == [("calls.add", 200)]


def test_a_forged_publish_header_leaves_the_wait_unknown_and_the_run_measured(
        app_gate: Any) -> None:
    """Attack probe: whoever can publish to the broker writes the header. A value that
    is not a publish time (too large for a float, infinite, NaN, before 2000, a string,
    a list, a 100 000-digit number) is an unknown wait: the task runs, its run is
    measured, no queue wait is learnt from it and nothing is counted as a fault."""
    app, gate, seen = app_gate

    @app.task(name="calls.add")
    def add(x: int, y: int) -> int:
        return x + y

    forged = [10**400, "-inf", float("-inf"), float("nan"), "abc", -5.0, 1.0, "0",
              True, [1], "9" * 100_000]
    for value in forged:
        assert add.apply((1, 2), headers={pg_celery.HEADER: value}).get() == 3
    assert jobs(seen) == [("calls.add", 200)] * len(forged)  # every run, no QUEUE run
    assert gate.stats()["internal_errors"] == 0
    assert add.apply((1, 2), headers={pg_celery.HEADER: time.time() - 0.5}).get() == 3
    queued = [ms for route, _, ms in seen[len(forged):] if ms >= 400.0]
    assert len(queued) == 1 and queued[0] < 5_000.0  # a real publish time still counts



def test_a_forged_retry_count_leaves_the_run_measured(app_gate: Any) -> None:
    """Attack probe (hsec4): the retry count is the message's too. One that is no count
    (a string, 100 000 digits, NaN, infinity, a list, a dict, negative) is a first
    attempt and a huge one is capped: every run is measured and nothing is counted as
    a fault (before: int() of it raised, and the run went unmeasured)."""
    app, gate, seen = app_gate

    @app.task(name="calls.add")
    def add(x: int, y: int) -> int:
        return x + y

    forged = [-1, "abc", "9" * 100_000, float("nan"), float("inf"), 10**400, [1], {"a": 1}]
    for value in forged:
        assert add.apply((1, 2), retries=value).get() == 3
    assert jobs(seen) == [("calls.add", 200)] * len(forged)
    assert gate.stats()["internal_errors"] == 0

@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_body_raising_a_base_exception_is_a_failure_and_the_next_run_is_measured(
        app_gate: Any, error: BaseException) -> None:
    """Attack probe: ``SystemExit``/``KeyboardInterrupt`` out of a body reach Celery
    unchanged (its worker decides), the run ends as a failure, and the base task's
    ``__call__`` is left working for the next task."""
    app, gate, seen = app_gate

    @app.task(name="calls.leave")
    def leave() -> None:
        raise error

    @app.task(name="calls.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(type(error)):
        leave.apply(throw=True)
    assert add.apply((1, 2)).get() == 3
    assert jobs(seen) == [("calls.leave", 500), ("calls.add", 200)]
    assert gate.stats()["jobs"]["names"]["calls.leave"]["outcomes"] == {"failure": 1}
    assert gate.stats()["internal_errors"] == 0


def test_recursion_nested_runs_and_a_blown_stack_are_measured_and_leave_no_fault(
        app_gate: Any) -> None:
    """Attack probe: a task applying itself inside its body is a run per level; one
    calling itself directly until RecursionError is one failed run, and the next run
    is measured."""
    app, gate, seen = app_gate

    @app.task(name="calls.fact")
    def fact(n: int) -> int:
        return 1 if n <= 1 else n * int(fact.apply((n - 1,)).get())

    @app.task(name="calls.deep")
    def deep(n: int) -> int:
        return int(deep(n - 1)) if n else 0

    assert fact.apply((5,)).get() == 120
    with pytest.raises(RecursionError):
        deep.apply((100_000,), throw=True)
    assert deep.apply((3,)).get() == 0
    assert jobs(seen) == [("calls.fact", 200)] * 5 + [("calls.deep", 500), ("calls.deep", 200)]
    assert gate.stats()["internal_errors"] == 0


def test_a_pool_childs_exit_waits_a_bounded_time_for_a_close_that_hangs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefork child closes its gate on ``worker_process_shutdown`` (then billiard's
    ``os._exit``). A unit listener that never returns (a synchronous span exporter whose
    collector never answers) blocks that close in the drain: the child must still leave,
    after :data:`pulsegate.jobs.celery.CHILD_EXIT_SECONDS`, the wait counted as a fault
    (before: the child never exited, holding its pool slot)."""
    app = Celery("exits", broker="memory://")
    app.conf.task_ignore_result = True
    gate = PulseGate(log_events=False, job_learning="background")
    release = threading.Event()
    gate.unit_listeners.append(lambda record, run: release.wait())
    pg_celery.instrument(app, gate)
    monkeypatch.setattr(pg_celery, "CHILD_EXIT_SECONDS", 0.5)
    left = threading.Event()

    def child_exit() -> None:
        signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)
        left.set()

    try:
        @app.task(name="exits.job")
        def job() -> int:
            return 1

        assert job.apply().get() == 1
        threading.Thread(target=child_exit, daemon=True).start()
        assert left.wait(10.0), "the child's exit waited for the close"
        assert gate.faults.by_kind.get("celery.child_exit:TimeoutError") == 1
    finally:
        release.set()
        pg_celery.uninstrument()


def test_a_pool_childs_close_that_raises_is_counted_and_the_exit_goes_on() -> None:
    """The same close raising: counted once, nothing raised into billiard's exit path."""
    app = Celery("exits2", broker="memory://")
    gate = PulseGate(log_events=False, job_learning="background")

    def broken_close() -> None:
        raise OSError("state store gone")

    gate.close = broken_close  # type: ignore[method-assign]
    pg_celery.instrument(app, gate)
    try:
        signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)
        assert gate.faults.by_kind == {"celery.child_exit:OSError": 1}
    finally:
        pg_celery.uninstrument()


def test_forged_headers_are_not_kept_whole_until_the_drain() -> None:
    """Attack probe (hsec5): in the background a run keeps its message's publish header
    and ``eta`` unread until the drain (0.5 s; up to MAX_PENDING runs while a drain is
    slow or stuck). Whoever can publish chose their size: with the scheduler's drain
    stuck in a listener, 200 runs with a 100 kB header held 20 MB once the tasks had
    returned. No time is that long: what a run keeps of its header (and its eta) is
    bounded, and a real publish time still counts once the drain goes on."""
    import tracemalloc

    app = Celery("forged", broker="memory://")
    app.conf.task_ignore_result = True
    gate = PulseGate(log_events=False, job_learning="background")
    exporter = StuckExporter(gate)
    seen = Seen(gate)
    pg_celery.instrument(app, gate)
    try:
        @app.task(name="forged.add")
        def add(x: int, y: int) -> int:
            return x + y

        assert add.apply((1, 2)).get() == 3
        assert exporter.stuck.wait(5.0)
        tracemalloc.start()
        try:
            for i in range(200):
                forged = {pg_celery.HEADER: f"{i}" + "9" * 100_000}
                assert add.apply((1, 2), headers=forged).get() == 3
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert held < 4_000_000, held
        exporter.release.set()
        assert add.apply((1, 2), headers={pg_celery.HEADER: time.time() - 0.5}).get() == 3
        assert jobs(seen) == [("forged.add", 200)] * 203  # 202 runs, one QUEUE wait
        queued = [ms for _, _, ms in seen if ms >= 400.0]
        assert len(queued) == 1 and queued[0] < 5_000.0  # the real publish time's
        assert gate.stats()["internal_errors"] == 0
    finally:
        exporter.release.set()
        pg_celery.uninstrument()
        gate.close()
