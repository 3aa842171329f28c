"""Attack probes of :mod:`pulsegate.jobs.deferred` (``job_learning="background"``): what
a run keeps alive until the drain, runs whose end never comes, and a job's message
read on the worker's thread and worked out in the drain (a forged publish header or
``eta``)."""

from __future__ import annotations

import contextvars
import gc
import math
import threading
import weakref
from typing import Any

import pytest
from jobs_learnt import StuckExporter

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job, tracker_of
from pulsegate.jobs.celery import PublishStamp
from pulsegate.jobs.deferred import MAX_PENDING
from pulsegate.jobs.runs import deferred_of

NOW = 1.7e9


def make_gate() -> tuple[PulseGate, FakeClock]:
    clock = FakeClock()
    return PulseGate(clock=clock, cpu_clock=clock, wall=lambda: NOW + clock.t,
                     job_learning="background"), clock


class Payload:
    """A large local of a job's frame (a frame a traceback keeps alive)."""


def test_a_failed_run_keeps_nothing_of_its_job_alive_until_the_drain() -> None:
    """A failed job's exception holds its traceback, and the traceback every local of
    the job's frames: a queued run that kept it would keep each failed job's data alive
    until the drain (0.5 s; up to MAX_PENDING runs when the drain is stopped). The run
    keeps the exception's name, which is all the drain learns."""
    g, _ = make_gate()
    try:
        kept: list[weakref.ref[Payload]] = []

        def job() -> None:
            payload = Payload()
            kept.append(weakref.ref(payload))
            raise ValueError("bad row")

        for _ in range(3):
            with pytest.raises(ValueError), observe_job("import", gate=g):
                job()
        gc.collect()
        assert [ref() for ref in kept] == [None, None, None]
        assert deferred_of(g).drain() == 6
        assert g.stats()["units"]["JOB"]["runs"] == {"failure": 3}
        assert tracker_of(g).stats()["names"]["import"]["outcomes"] == {"failure": 3}
    finally:
        g.close()


def test_runs_that_never_end_do_not_keep_a_later_run_from_being_learnt() -> None:
    """A run whose end never comes (its thread gone) is looked at again at every drain,
    up to MAX_PENDING of them. Past that the oldest are let go, not the newest: else
    MAX_PENDING dead runs would keep every later job still running at a drain -- any
    job longer than 0.5 s -- from ever being learnt."""
    g, clock = make_gate()
    jobs = deferred_of(g)
    try:
        for _ in range(MAX_PENDING):  # begun in a context of their own, never ended
            contextvars.copy_context().run(jobs.begin, g, "stuck", 1.0, 0)
        jobs.drain()
        assert len(jobs.running) == MAX_PENDING
        with observe_job("export", gate=g):
            clock.t += 5.0
            jobs.drain()  # seen started, still running
            assert len(jobs.running) == MAX_PENDING
        assert jobs.drain() == 1
        assert g.stats()["units"]["JOB"]["runs"] == {"success": 1}
        assert len(jobs.running) == MAX_PENDING - 1  # the oldest let go, none added
    finally:
        g.close()


FORGED_PUBLISHED: list[Any] = [10**400, "1e400", "-inf", float("inf"), float("nan"), "nan",
                               "abc", -5.0, 0, "0", True, None, [NOW], {"t": NOW}, b"1.7e9",
                               "9" * 100_000, " " * 100_000]


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    inner = out
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return out


FORGED_ETA: list[Any] = [nested(100_000), {"eta": "2026-12-07"}, 10**400, float("nan"),
                         b"2026-12-07", "x" * 1_000_000, "2026-12-07T18:00:00" + "0" * 100_000,
                         "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]


def test_a_forged_header_is_an_unknown_wait() -> None:
    """Whoever can publish to the broker writes the header: anything that is not a
    finite time since 2000 is an unknown wait (None), never a NaN, infinite or
    negative one."""
    for value in FORGED_PUBLISHED:
        assert PublishStamp(value, None).wait_ms(NOW) is None, value
    assert PublishStamp(NOW - 0.25, None).wait_ms(NOW) == pytest.approx(250.0)
    assert PublishStamp(f"{NOW - 0.25}", None).wait_ms(NOW) == pytest.approx(250.0)
    assert PublishStamp(NOW + 3600.0, None).wait_ms(NOW) == 0.0  # a producer ahead


@pytest.mark.parametrize("eta", FORGED_ETA, ids=range(len(FORGED_ETA)))
def test_a_forged_eta_never_raises_and_leaves_a_finite_wait(eta: Any) -> None:
    """The ``eta`` is the message's too: one that is no time (a list nested 100 000
    deep, whose str() overflows the stack; a dict, bytes, a huge int, megabytes of
    text) is ignored, one at the ends of the calendar leaves a finite wait >= 0."""
    wait = PublishStamp(NOW - 1.0, eta).wait_ms(NOW)
    assert wait is not None and math.isfinite(wait) and 0.0 <= wait <= 1000.0


def test_a_forged_message_read_in_the_drain_learns_every_run_and_counts_no_fault() -> None:
    """In the background the stamp is worked out on the scheduler's thread: a forged
    header or eta neither loses the run's start or end nor counts a fault; a real
    publish time is still learnt as the wait."""
    g, clock = make_gate()
    jobs = deferred_of(g)
    try:
        stamps = [PublishStamp(v, None) for v in FORGED_PUBLISHED]
        stamps += [PublishStamp(NOW - 1.0, eta) for eta in FORGED_ETA]
        for stamp in stamps:
            run = jobs.begin(g, "mail", None, 0, stamp)
            assert run is not None
            clock.t += 0.01
            jobs.end(g, run, "success", None)
        assert jobs.drain() == 2 * len(stamps)
        assert g.stats()["internal_errors"] == 0
        assert g.stats()["units"]["JOB"]["runs"] == {"success": len(stamps)}
        queued = [r["requests"] for r in g.endpoints() if r["endpoint"] == "QUEUE mail"]
        assert queued == [len(FORGED_ETA)]  # the etas' runs: their publish time is real
        wait = tracker_of(g).stats()["names"]["mail"]["last_wait_ms"]
        assert math.isfinite(wait) and 0.0 <= wait <= 1000.0 + 1e3 * clock.t
    finally:
        g.close()


def test_a_job_that_drains_past_the_bound_is_not_charged_for_the_drain() -> None:
    """Attack probe (hsec4): with the drain slow or stopped, every MAX_PENDING-th job
    drains the queue on its own thread before it runs (MAX_PENDING learnings). That
    time is pulsegate's, not the job's: no run is learnt longer than its own body."""
    g, clock = make_gate()
    # no periodic drain while the jobs run (under load one overlapped a job's body and
    # its learnings moved the clock inside it, with or without hsec6's change): only
    # the drain the 4 096th job asks for
    g.scheduler.tick = 3600.0
    durations: list[float] = []

    def learnt(record: Any, run: Any) -> None:
        if record.method == "JOB":
            durations.append(record.duration_ms)
        clock.t += 0.001  # what learning a run costs its thread

    g.unit_listeners.append(learnt)
    try:
        for _ in range(MAX_PENDING + 10):
            with observe_job("tick", gate=g):
                clock.t += 0.002
        deferred_of(g).drain()
        assert len(durations) == MAX_PENDING + 10
        assert max(durations) == pytest.approx(2.0)
    finally:
        g.close()


def test_a_full_queue_never_waits_for_a_drain_stuck_in_a_listener() -> None:
    """Attack probe (hsec5): the scheduler's drain is stuck in a unit listener (a
    synchronous span exporter whose collector never answers: ``span.end`` exports on
    the drain's thread). Jobs go on; when MAX_PENDING are queued, the next job must not
    wait for that drain to end (before: it waited on the drain's lock as long as the
    listener blocked). The oldest queued runs are let go instead, counted."""
    g, clock = make_gate()
    jobs = deferred_of(g)
    exporter = StuckExporter(g)
    ran: list[int] = []

    def worker() -> None:
        for _ in range(MAX_PENDING + 10):
            with observe_job("tick", gate=g):
                clock.t += 0.002
            ran.append(1)

    try:
        with observe_job("first", gate=g):
            pass
        drain = threading.Thread(target=jobs.drain, daemon=True)  # the scheduler's
        drain.start()
        assert exporter.stuck.wait(5.0)
        jobs_thread = threading.Thread(target=worker, daemon=True)
        jobs_thread.start()
        jobs_thread.join(10.0)
        assert len(ran) == MAX_PENDING + 10, "a job waited for the stuck drain"
        assert len(jobs.pending) <= MAX_PENDING
        assert g.faults.by_kind.get("jobs.overflow:OverflowError", 0) >= 1
    finally:
        exporter.release.set()
        g.close()


def test_closing_the_gate_does_not_wait_for_a_drain_stuck_in_a_listener() -> None:
    """Attack probe (hsec5): the scheduler's drain is stuck in a unit listener (a
    synchronous span exporter whose collector never answers). ``gate.close()`` -- an
    ASGI lifespan shutdown, atexit -- flushes the scheduler's jobs, the drain among
    them: it must not wait for the stuck one (before: it waited as long as the listener
    blocked, and the process could not exit)."""
    g = PulseGate(job_learning="background", log_events=False)
    stuck, release = threading.Event(), threading.Event()

    def exporter(record: Any, run: Any) -> None:
        stuck.set()
        release.wait()

    g.unit_listeners.append(exporter)
    closed = threading.Event()

    def close() -> None:
        g.close()
        closed.set()

    try:
        with observe_job("first", gate=g):
            pass
        assert stuck.wait(5.0)  # the scheduler's own drain, within 0.5 s
        threading.Thread(target=close, daemon=True).start()
        assert closed.wait(10.0), "gate.close() waited for the stuck drain"
    finally:
        release.set()


def test_a_run_that_never_ends_lets_its_trace_context_go_past_the_bound() -> None:
    """Attack probe (hsec5): a run keeps the tracing context it started in (the
    exporter's ``trace_context``: the job's span, whatever the application put in the
    context) until its end is learnt. A run whose end never comes (its thread killed)
    keeps it only while it is among the MAX_PENDING newest running: past them it is let
    go, and its context with it."""
    g, _ = make_gate()
    jobs = deferred_of(g)
    contexts: list[weakref.ref[Payload]] = []

    def capture() -> object:
        context = Payload()
        contexts.append(weakref.ref(context))
        return context

    g.plugs.set_trace_context(capture)
    try:
        for _ in range(MAX_PENDING + 10):  # begun in a context of their own, never ended
            contextvars.copy_context().run(jobs.begin, g, "stuck", 1.0, 0)
            if len(jobs.pending) > 1000:
                jobs.drain()
        jobs.drain()
        gc.collect()
        alive = [ref() is not None for ref in contexts]
        assert alive == [False] * 10 + [True] * MAX_PENDING
        assert g.stats()["internal_errors"] == 0
    finally:
        g.close()


def test_the_schedulers_drain_skips_a_busy_queue_without_letting_runs_go() -> None:
    """While another drain is under way (here stuck in a listener), the scheduler's own
    drain skips: it lets no queued run go, even with MAX_PENDING queued -- only a job
    that would otherwise wait does (the test above)."""
    g, clock = make_gate()
    jobs = deferred_of(g)
    exporter = StuckExporter(g)
    try:
        with observe_job("first", gate=g):
            pass
        threading.Thread(target=jobs.drain, daemon=True).start()
        assert exporter.stuck.wait(5.0)
        for _ in range(MAX_PENDING):
            with observe_job("tick", gate=g):
                clock.t += 0.001
        assert len(jobs.pending) == MAX_PENDING
        assert jobs.drain_due() == 0
        assert len(jobs.pending) == MAX_PENDING
        assert g.stats()["internal_errors"] == 0
    finally:
        exporter.release.set()
        g.close()


def test_a_full_queue_never_runs_the_listeners_on_the_jobs_thread() -> None:
    """The scheduler is held by another job that hangs (a webhook, an exporter) and no
    drain runs, so the queue fills. Before: the job that found MAX_PENDING queued
    drained it on its own thread -- every unit listener ran there, and one that blocks
    (a synchronous span exporter whose collector never answers) blocked the job, or a
    request using ``observe_job``, for as long as it hung. Now the worker waits a
    bounded time for the scheduler's drain, then lets the oldest go, counted."""
    g, clock = make_gate()
    g.scheduler.limit = 120.0  # the hanging job holds the scheduler for the whole test
    hanging, release = threading.Event(), threading.Event()
    on_the_jobs_thread: list[str] = []
    workers: set[int] = set()

    def hang() -> None:
        hanging.set()
        release.wait(120.0)

    def exporter(record: Any, run: Any) -> None:
        if threading.get_ident() in workers:
            on_the_jobs_thread.append(record.endpoint)
            release.wait(120.0)

    g.unit_listeners.append(exporter)
    jobs = deferred_of(g)
    g.scheduler.every(0.05, hang, "hang", first_in=0)
    done = threading.Event()

    def worker() -> None:
        workers.add(threading.get_ident())
        for _ in range(MAX_PENDING + 10):
            with observe_job("tick", gate=g):
                clock.t += 0.002
        done.set()

    try:
        g.scheduler.ensure_started()
        assert hanging.wait(20.0)
        threading.Thread(target=worker, daemon=True).start()
        assert done.wait(60.0), "a job waited on a unit listener"
        assert on_the_jobs_thread == []
        assert len(jobs.pending) <= MAX_PENDING
        assert g.faults.by_kind.get("jobs.overflow:OverflowError", 0) >= 1
    finally:
        release.set()
        g.close()
