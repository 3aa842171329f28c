"""One background daemon thread for everything that must stay off the request path:
persistence, training, tuning, exporting.

The thread starts lazily on first use, and again in a forked child (gunicorn's
pre-fork workers inherit no threads), so importing or configuring pulsegate never
spawns anything. Jobs that raise are counted and logged once per kind, never retried in
a tight loop.

**A job that never returns stops no other job.** Jobs run one at a time, in the order
they fall due, on a *runner* thread; the thread that hands them over (the scheduler's,
or whoever calls :meth:`Scheduler.run_pending` / :meth:`~Scheduler.run_all` /
:meth:`~Scheduler.run_now`) waits for each at most :attr:`Scheduler.limit` seconds (30
by default). A job still running then -- a span exporter whose collector never answers,
a webhook that hangs, an alert callback blocked on a lock -- is left to finish on its
runner, which ends after it; the next job gets a fresh runner. The overrun is counted
once per run (``gate.stats()["internal_errors_by_kind"]``: ``scheduler job
<name>:TimeoutError``, logged the first time) and the job is not started again while that
run goes on: at most one thread per job name is ever left behind. The limits are wall
time on real threads (``time.monotonic``), whatever ``clock`` the scheduler was given.

A job that merely takes long finishes on its thread all the same; only its turn is
given up.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulsegate.faults import FaultCounter

__all__ = ["CLOSE_LIMIT", "FINAL_SECONDS", "JOB_LIMIT", "Job", "Scheduler", "call_within"]

_ALL: weakref.WeakSet[Scheduler] = weakref.WeakSet()

#: Seconds one job may hold the scheduler's turn before the others go on without it.
JOB_LIMIT = 30.0
#: Seconds ``gate.close()`` may spend flushing the scheduler's jobs, all of them together.
CLOSE_LIMIT = 10.0
#: Seconds a gate's final snapshot and alert delivery get at its close or at exit (a
#: store's and a webhook's own timeouts fit; an alert callback that never returns not).
FINAL_SECONDS = 5.0
#: Seconds an idle runner waits for a job before its thread ends (a new one is made on
#: demand): a gate whose scheduler was stopped, or driven once by hand, keeps no thread.
IDLE_SECONDS = 30.0


@dataclass
class Job:
    name: str
    interval: float
    fn: Callable[[], object]
    due: float
    #: ``time.monotonic()`` when the run under way started; None when none is
    started: float | None = None
    #: whether the run under way was already counted as overrunning
    overran: bool = False


class _Runner:
    """A daemon thread running the jobs given to it, one at a time, until retired; a
    retired runner ends once what it was given has run. At each job's end it clears
    ``job.started`` and notifies ``ended``."""

    def __init__(self, faults: FaultCounter, ended: threading.Condition) -> None:
        self.faults = faults
        self.ended = ended
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.retired = False
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, name="pulsegate-scheduler-job",
                         daemon=True).start()

    def give(self, job: Job) -> bool:
        """Run ``job`` next; False: retired (nothing given)."""
        with self.lock:  # (given and retired never cross: what is given runs)
            if self.retired:
                return False
            job.started, job.overran = time.monotonic(), False
            self.inbox.put(job)
        return True

    def retire(self) -> None:
        with self.lock:
            if not self.retired:
                self.retired = True
                self.inbox.put(None)

    def _serve(self) -> None:
        while True:
            try:
                job = self.inbox.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if self.inbox.empty():
                        self.retired = True
                        return
                continue
            if job is None:
                return
            try:
                job.fn()
            except Exception as exc:
                self.faults.record(f"scheduler job {job.name}", exc)
            finally:
                with self.ended:
                    job.started = None
                    self.ended.notify_all()


class Scheduler:
    """Periodic jobs on one daemon thread. ``run_pending(now)`` runs due jobs before it
    returns, so tests drive it with their own clock and no sleeping.

    ``limit``: seconds a job may hold the turn (see the module); ``close_limit``: seconds
    :meth:`close` spends on the last run of every job, all of them together."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 faults: FaultCounter | None = None, tick: float = 0.5,
                 limit: float = JOB_LIMIT, close_limit: float = CLOSE_LIMIT) -> None:
        self.clock = clock
        self.faults = faults or FaultCounter()
        self.tick = tick
        self.limit = limit
        self.close_limit = close_limit
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.started = False
        #: runs counted as overrunning their limit, since the start
        self.overruns = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: held by whoever hands a job to the runner, while it waits for it
        self._turn = threading.Lock()
        #: notified as a job ends, and as the thread is stopped
        self._ended = threading.Condition()
        self._runner: _Runner | None = None
        _ALL.add(self)

    def every(self, interval: float, fn: Callable[[], object], name: str | None = None,
              *, first_in: float | None = None) -> None:
        """Run ``fn`` every ``interval`` seconds (first after ``first_in``, default one
        interval). Re-registering a name replaces the job."""
        key = name or str(getattr(fn, "__qualname__", repr(fn)))
        with self.lock:
            delay = interval if first_in is None else first_in
            self.jobs[key] = Job(key, interval, fn, self.clock() + delay)

    def cancel(self, name: str) -> None:
        with self.lock:
            self.jobs.pop(name, None)

    def run_pending(self, now: float | None = None) -> int:
        """Run every job that is due, each waited for at most :attr:`limit` s (one whose
        last run still goes on is skipped); returns how many were due."""
        return self._run_due(now, self.limit, False)

    def run_all(self, within: float | None = None) -> None:
        """Run every job now, all of them within ``within`` seconds (default
        :attr:`limit` each); the jobs it has no time left for are skipped."""
        deadline = None if within is None else time.monotonic() + within
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            wait = self.limit if deadline is None else min(deadline - time.monotonic(),
                                                            self.limit)
            if wait <= 0:
                break
            self._run(job, wait, False)

    def run_now(self, name: str, wait: float) -> bool:
        """Run the job ``name`` now, waiting at most ``wait`` s for the turn and for the
        run (a worker that must not wait on a stuck job); True when it ran to its end
        within that time."""
        job = self.jobs.get(name)
        return job is not None and self._run(job, min(wait, self.limit), False)

    def close(self) -> None:
        """Stop the thread (a job it waits on is left to its runner), run every job once
        more within :attr:`close_limit` s in all, and retire the runner (shutdown)."""
        self.stop()
        self.run_all(self.close_limit)
        self.stop()

    def overrunning(self) -> list[str]:
        """The jobs whose run went past its limit and still goes on (on its own thread)."""
        return [job.name for job in list(self.jobs.values())
                if job.overran and job.started is not None]

    def stats(self) -> dict[str, Any]:
        """``gate.stats()["scheduler"]``: jobs, overruns counted, the jobs running past
        their limit now."""
        return {"jobs": len(self.jobs), "overruns": self.overruns,
                "overrunning": self.overrunning()}

    def _run_due(self, now: float | None, wait: float, from_loop: bool) -> int:
        now = self.clock() if now is None else now
        with self.lock:
            due = [j for j in self.jobs.values() if j.due <= now]
            for job in due:
                job.due = now + job.interval
        for job in due:
            if from_loop and self._stop.is_set():
                break
            self._run(job, wait, from_loop)
        return len(due)

    def _run(self, job: Job, wait: float, from_loop: bool) -> bool:
        """Hand ``job`` to the runner and wait for it at most ``wait`` s; True when it
        ran. A run still going then is left on its runner (the next job gets a new one)
        and the job is skipped until that run returns. The scheduler's own thread stops
        waiting when it is stopped."""
        deadline = time.monotonic() + wait
        if not self._turn.acquire(timeout=max(wait, 0.0)):
            return False
        try:
            with self._ended:
                if job.started is not None:  # its last run goes on, on a runner left behind
                    self._count_overrun(job)
                    return False
                runner = self._runner
                if runner is None or not runner.give(job):
                    runner = self._runner = _Runner(self.faults, self._ended)
                    runner.give(job)
                if self._ended.wait_for(
                        lambda: job.started is None or (from_loop and self._stop.is_set()),
                        deadline - time.monotonic()) and job.started is None:
                    return True
            runner.retire()  # ends once the job returns
            self._runner = None
            self._count_overrun(job, waited_out=wait >= self.limit
                                and time.monotonic() >= deadline)  # (not a stop)
            return False
        finally:
            self._turn.release()

    def _count_overrun(self, job: Job, waited_out: bool = False) -> None:
        """Count ``job``'s run as overrunning, once: when a wait of the whole limit ran
        out on it (``waited_out``), or when it started at least a limit ago."""
        started = job.started
        if started is None or job.overran or (
                not waited_out and time.monotonic() - started < self.limit):
            return
        job.overran = True
        self.overruns += 1
        self.faults.record(f"scheduler job {job.name}", TimeoutError(
            f"still running after {self.limit:g} s: left to finish on its own thread, "
            "the other jobs go on, and it is not started again until it returns"))

    def ensure_started(self) -> None:
        """Start the thread if it is not running in this process (cheap when it is)."""
        if self.started:
            return
        with self.lock:
            if self.started:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="pulsegate-scheduler",
                                            daemon=True)
            self.started = True
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self._run_due(None, self.limit, True)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waiting at most ``timeout`` s for it; a job it waits on is
        left to its runner) and retire the runner; :meth:`run_pending` still works
        afterwards, on a new runner."""
        self._stop.set()
        with self._ended:
            self._ended.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self.started = False
        runner = self._runner
        if runner is not None:
            runner.retire()


def call_within(fn: Callable[[], object], seconds: float, name: str) -> bool:
    """Call ``fn`` on a daemon thread of its own and wait for it at most ``seconds``;
    True when it returned (``fn`` counts its own faults). For a shutdown that must end:
    what hangs is left on that thread, which does not keep the process alive. Where no
    thread can be started (an ``atexit`` hook on Python 3.12.0-3.12.1: "can't create
    new thread at interpreter shutdown") ``fn`` runs here, unbounded."""
    thread = threading.Thread(target=fn, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:
        fn()
        return True
    thread.join(seconds)
    return not thread.is_alive()


def _after_fork_in_child() -> None:
    # The child has no scheduler thread even though the flag says so, nor a runner: let
    # the next request start a fresh one. A run under way in the parent is not the
    # child's.
    for scheduler in list(_ALL):
        scheduler.started = False
        scheduler._thread = None
        scheduler._stop = threading.Event()
        scheduler.lock = threading.Lock()
        scheduler._turn = threading.Lock()
        scheduler._ended = threading.Condition()
        scheduler._runner = None
        for job in scheduler.jobs.values():
            job.started, job.overran = None, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
