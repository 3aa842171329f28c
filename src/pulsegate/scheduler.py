"""One background daemon thread for everything that must stay off the request path:
persistence, training, tuning, exporting.

The thread starts lazily on first use, and again in a forked child (gunicorn's
pre-fork workers inherit no threads), so importing or configuring pulsegate never
spawns anything. Jobs that raise are counted and logged once per kind, never retried in
a tight loop.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from pulsegate.faults import FaultCounter

_ALL: weakref.WeakSet[Scheduler] = weakref.WeakSet()


@dataclass
class Job:
    name: str
    interval: float
    fn: Callable[[], object]
    due: float


class Scheduler:
    """Periodic jobs on one daemon thread. ``run_pending(now)`` runs due jobs inline so
    tests drive it with their own clock and no sleeping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 faults: FaultCounter | None = None, tick: float = 0.5) -> None:
        self.clock = clock
        self.faults = faults or FaultCounter()
        self.tick = tick
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.started = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
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
        """Run every job that is due; returns how many ran."""
        now = self.clock() if now is None else now
        with self.lock:
            due = [j for j in self.jobs.values() if j.due <= now]
            for job in due:
                job.due = now + job.interval
        for job in due:
            self._run(job)
        return len(due)

    def run_all(self) -> None:
        """Run every job now (shutdown flush)."""
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            job.fn()
        except Exception as exc:
            self.faults.record(f"scheduler job {job.name}", exc)

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
            self.run_pending()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        self.started = False


def _after_fork_in_child() -> None:
    # The child has no scheduler thread even though the flag says so: let the next
    # request start a fresh one.
    for scheduler in list(_ALL):
        scheduler.started = False
        scheduler._thread = None
        scheduler._stop = threading.Event()
        scheduler.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
