"""RQ, with one line: run the worker class ``pulsegate.jobs.rq.Worker`` (``rq worker -w
pulsegate.jobs.rq.Worker``) or, for the in-process worker, ``pulsegate.jobs.rq.SimpleWorker``.

* **queue wait**: :math:`\\max(0,\\ t_{start} - t_{enqueued})` from the job's own
  ``enqueued_at`` (RQ stamps it when the job enters its queue: a job scheduled with
  ``enqueue_in`` / ``enqueue_at`` or re-queued for a retry is stamped then), so producers
  need nothing;
* **retries**: the job's ``number_of_retries``; a failed attempt that RQ re-queues or
  re-schedules (``Retry``) is the outcome ``"retry"``, one that stays failed
  ``"failure"`` (named after its exception);
* :class:`SimpleWorker` runs each job in the worker's own process: the run is measured
  like any job (duration, thread CPU, allocated blocks, the SQL it runs, N+1 included);
* :class:`Worker` forks a work horse per job, whose memory dies with it: the worker
  records each job from its side instead -- the duration RQ stored (``ended_at -
  started_at``), the horse's CPU time from ``wait4``'s resource usage, the outcome from
  the job's final status. The SQL of a forked job is not seen (use ``SimpleWorker``, or
  ``observe_job`` inside the job with a gate that persists to a shared store).

The job name is RQ's ``func_name`` (the function's dotted path: low cardinality);
arguments are never read. Nothing raises into RQ: faults are counted by the gate.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import rq
from rq.job import JobStatus

from pulsegate.jobs import get_gate
from pulsegate.jobs.runs import end, retries_of, start, tracker_of
from pulsegate.units import JOB, MAX_UNIT_NAME, QUEUE

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate

__all__ = ["SimpleWorker", "Worker", "outcome_of", "queue_wait_ms", "watch_queues"]


def _epoch(when: Any) -> float | None:
    if not isinstance(when, datetime):
        return None
    if when.tzinfo is None:  # RQ before 2.0 stored naive UTC
        when = when.replace(tzinfo=timezone.utc)
    return float(when.timestamp())


def queue_wait_ms(job: Any, now: float) -> float | None:
    """:math:`\\max(0, now - t_{enqueued})` in ms (None: not stamped)."""
    enqueued = _epoch(getattr(job, "enqueued_at", None))
    if enqueued is None:
        return None
    wait = now - enqueued
    return wait * 1000.0 if wait > 0.0 else 0.0


def outcome_of(status: Any, ok: bool | None = None) -> str:
    """A job's outcome from its status once RQ has handled the attempt: finished is a
    success; queued, scheduled or deferred again (a ``Retry``) a retry; anything else a
    failure."""
    value = getattr(status, "value", status)
    if value == JobStatus.FINISHED.value:
        return "success"
    if value in (JobStatus.QUEUED.value, JobStatus.SCHEDULED.value,
                 JobStatus.DEFERRED.value):
        return "retry"
    if value in (JobStatus.STARTED.value, None) and ok:
        return "success"
    return "failure"


def _name(job: Any) -> str:
    """The job's ``func_name``, as far as a name is ever read (:data:`MAX_UNIT_NAME`):
    whoever enqueues writes it, and a background run keeps it until the drain."""
    try:
        return str(job.func_name)[:MAX_UNIT_NAME]
    except Exception:  # a job that cannot be deserialised
        return "(undeserialisable)"


def _status(job: Any, refresh: bool) -> Any:
    try:
        return job.get_status(refresh=refresh)
    except Exception:  # the job expired already (result_ttl=0)
        return None


class _Measured:
    """What both workers share: the gate (chosen on first use, in the worker process),
    the exception of the attempt (an exception handler of RQ's own chain), faults."""

    pulsegate: PulseGate | None = None
    _pulsegate_error: str | None = None

    def _gate(self) -> PulseGate:
        if self.pulsegate is None:
            self.pulsegate = get_gate()
        return self.pulsegate

    def _exc_handler(self, job: Any, exc_type: Any, exc_value: Any, tb: Any) -> bool:
        self._pulsegate_error = getattr(exc_type, "__name__", None)
        return True  # fall through to the other handlers

    def _fault(self, where: str, exc: Exception) -> None:
        if self.pulsegate is not None:
            self.pulsegate.faults.record(where, exc)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """RQ's ``work``, leaving the process's SIGINT and SIGTERM handlers as it found
        them: RQ installs its own (they raise ``StopRequested`` when the worker is idle)
        and never puts the old ones back, so a worker run in process (a burst worker in
        a test, a management command) would leave a stale handler raising ``StopRequested``
        into whatever runs next when the process is signalled."""
        if threading.current_thread() is not threading.main_thread():
            return bool(super().work(*args, **kwargs))  # type: ignore[misc]
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return bool(super().work(*args, **kwargs))  # type: ignore[misc]
        finally:
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)


class SimpleWorker(_Measured, rq.SimpleWorker):  # type: ignore[misc]
    """RQ's in-process worker, each job measured as a pulsegate job."""

    def __init__(self, *args: Any, gate: PulseGate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pulsegate = gate
        self.push_exc_handler(self._exc_handler)  # type: ignore[no-untyped-call]

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        run = None
        try:
            gate = self._gate()
            self._pulsegate_error = None
            run = start(gate, _name(job), queue_wait_ms=queue_wait_ms(job, time.time()),
                        retries=retries_of(getattr(job, "number_of_retries", 0)))
        except Exception as exc:
            self._fault("rq.start", exc)
        ok = False
        try:
            ok = bool(super().perform_job(job, queue, *args, **kwargs))  # (RQ 3: execution)
            return ok
        finally:
            if run is not None:
                try:
                    end(self._gate(), run, outcome_of(_status(job, False), ok),
                        self._pulsegate_error)
                except Exception as exc:
                    self._fault("rq.end", exc)


class Worker(_Measured, rq.Worker):  # type: ignore[misc]
    """RQ's forking worker; each job recorded from the worker's side (see the module)."""

    def __init__(self, *args: Any, gate: PulseGate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pulsegate = gate
        self._pulsegate_cpu_ms: float | None = None

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        pid, stat, rusage = super().wait_for_horse()
        if rusage is not None:
            self._pulsegate_cpu_ms = (rusage.ru_utime + rusage.ru_stime) * 1000.0
        return pid, stat, rusage

    def execute_job(self, job: Any, queue: Any) -> None:
        wait = queue_wait_ms(job, time.time())
        retries = retries_of(getattr(job, "number_of_retries", 0))
        self._pulsegate_cpu_ms = None
        began = time.perf_counter()
        try:
            super().execute_job(job, queue)
        finally:
            self._record(job, wait, retries, time.perf_counter() - began)

    def _record(self, job: Any, wait: float | None, retries: int, elapsed: float) -> None:
        try:
            gate = self._gate()
            name = _name(job)
            status = _status(job, True)
            try:
                job.refresh()
                started, ended = _epoch(job.started_at), _epoch(job.ended_at)
            except Exception:  # gone already (result_ttl=0)
                started = ended = None
            seconds = ended - started if started is not None and ended is not None \
                and ended >= started else elapsed
            units = gate.units
            if wait is not None:
                units.record(QUEUE, name, wait)
            tracker = tracker_of(gate)
            kept = units.name(JOB, name)
            tracker.started(kept, gate.wall() - seconds, wait)
            outcome = outcome_of(status)
            units.record(JOB, name, seconds * 1000.0, outcome=outcome,
                         error=_error_of(job) if outcome != "success" else None,
                         retries=retries, queue_wait_ms=wait, cpu_ms=self._pulsegate_cpu_ms)
            tracker.finished(kept, outcome)
        except Exception as exc:
            self._fault("rq.record", exc)


def _error_of(job: Any) -> str | None:
    """The exception class of the job's last failed attempt, from RQ's stored result
    (its traceback's last line, ``"ValueError: ..."``)."""
    try:
        result = job.latest_result()
        text = str(getattr(result, "exc_string", "") or "").strip().splitlines()
    except Exception:
        return None
    if not text:
        return None
    head = text[-1].split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return head[:100] if head.isidentifier() else None


def watch_queues(queues: Iterable[Any], gate: PulseGate | None = None,
                 interval: float = 10.0) -> Any:
    """Sample the length and the oldest job of RQ ``queues`` (``rq.Queue`` objects on one
    connection) on the gate's scheduler (:mod:`pulsegate.jobs.broker`): any process may
    watch, so a producer sees a queue that no worker takes from."""
    from pulsegate.jobs.broker import RQ, watch

    queues = list(queues)
    if not queues:
        raise ValueError("watch_queues needs at least one rq.Queue")
    return watch(gate if gate is not None else get_gate(), queues[0].connection,
                 [q.name for q in queues], RQ, interval)
