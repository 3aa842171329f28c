"""Celery in-process (``task.apply()``: the worker's tracer without the broker): what a
run measures, which calls are runs, and what ``uninstrument`` leaves. The real worker
is in test_jobs_celery.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, Task, signals
from celery.exceptions import Ignore

from pulsegate.engine import PulseGate
from pulsegate.jobs import celery as pg_celery


@pytest.fixture()
def app_gate() -> Iterator[tuple[Celery, PulseGate, list[tuple[str, int, float]]]]:
    app = Celery("calls", broker="memory://")
    app.conf.task_ignore_result = True
    gate = PulseGate(log_events=False)
    seen: list[tuple[str, int, float]] = []
    gate.unit_listeners.append(
        lambda record, run: seen.append((record.route, record.status, record.duration_ms)))
    pg_celery.instrument(app, gate)
    try:
        yield app, gate, seen
    finally:
        pg_celery.uninstrument()
        gate.close()


def jobs(seen: list[tuple[str, int, float]]) -> list[tuple[str, int]]:
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
