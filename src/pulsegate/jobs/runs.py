"""A job run against a gate: the steps every job integration (``observe_job``, Celery,
RQ) takes, written once.

::

    run = start(gate, "send_email", queue_wait_ms=1250.0, retries=0)
    ...                                  # the job
    end(gate, run, "success")            # "failure", "retry", "timeout"

``start`` learns the queue wait as a run of ``"QUEUE <name>"`` (when known), begins a run
of ``"JOB <name>"`` that collects the SQL run in its context and measures thread CPU and
the allocated-block delta, and tells the gate's :class:`~pulsegate.jobs.tracker.JobTracker`
the job started. Both fail open (None), like every unit step.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from pulsegate.jobs.deferred import DRAIN_JOB, DeferredJobs, JobRun
from pulsegate.jobs.tracker import JobTracker
from pulsegate.unit_flags import flag
from pulsegate.units import JOB, QUEUE

if TYPE_CHECKING:
    from pulsegate.records import RequestRecord
    from pulsegate.units import UnitGate, UnitRun

__all__ = ["MAX_RETRIES", "MIN_WAIT_MS", "deferred_of", "end", "retries_of", "start", "tracker_of"]

#: The shortest queue wait the QUEUE model learns (ms): shorter is "did not wait".
MIN_WAIT_MS = 1.0

_TRACKERS: weakref.WeakKeyDictionary[Any, JobTracker] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def tracker_of(gate: UnitGate) -> JobTracker:
    """The gate's job tracker, made (and plugged in: stats ``"jobs"``, persisted state
    ``"jobs"``, the starvation check on the scheduler) on first use."""
    tracker = _TRACKERS.get(gate)
    if tracker is not None:
        return tracker
    with _LOCK:
        tracker = _TRACKERS.get(gate)
        if tracker is None:
            tracker = JobTracker(gate.config.units.max_units)
            _TRACKERS[gate] = tracker
            gate.plugs.add_stats("jobs", tracker)
            gate.plugs.add_state("jobs", tracker)
            ref = weakref.ref(gate)

            def check() -> None:
                g = ref()
                if g is not None:
                    check_starvation(g, tracker)

            gate.scheduler.every(tracker.check_interval, check, "pulsegate.jobs.starvation")
    return tracker


_DEFERRED: weakref.WeakKeyDictionary[Any, DeferredJobs] = weakref.WeakKeyDictionary()


def deferred_of(gate: UnitGate) -> DeferredJobs:
    """The gate's queue of job runs learnt in the background (``job_learning=
    "background"``), made (and its drain put on the scheduler) on first use."""
    found = _DEFERRED.get(gate)
    if found is not None:
        return found
    tracker = tracker_of(gate)
    with _LOCK:
        found = _DEFERRED.get(gate)
        if found is None:
            found = _DEFERRED[gate] = DeferredJobs(gate, tracker, MIN_WAIT_MS)
            gate.scheduler.every(0.5, found.drain_due, DRAIN_JOB)
        return found


def check_starvation(gate: UnitGate, tracker: JobTracker) -> list[dict[str, Any]]:
    """Flag every job name that stopped starting against its learnt rate (see
    :mod:`pulsegate.jobs.tracker`); returns the incidents recorded."""
    now = gate.wall()
    out = []
    for name in tracker.starving(now):
        fields = tracker.verdict(name, now)
        score = fields.pop("score", 1.0)
        out.append(flag(gate, JOB, name, "starvation", score, **fields))
    return out


def start(gate: UnitGate, name: object, *, queue_wait_ms: float | None = None,
          retries: int = 0) -> UnitRun | JobRun | None:
    """Begin a job run of ``name`` (after ``queue_wait_ms`` in its queue, its
    ``retries``-th retry); None when the gate is off or on a fault. With
    ``job_learning="background"`` the run is a :class:`~pulsegate.jobs.deferred.JobRun`
    (learnt on the scheduler's thread), else a :class:`~pulsegate.units.UnitRun`."""
    if queue_wait_ms is not None:
        queue_wait_ms = queue_wait_ms if queue_wait_ms > 0.0 else 0.0
    if gate.config.units.job_learning == "background":
        return deferred_of(gate).begin(gate, name, queue_wait_ms, retries)
    units = gate.units
    if queue_wait_ms is not None:
        # learnt as at least 1 ms: on the models' log scale a job that did not wait at
        # all (1 µs, the floor) would read as a thousandfold drop from one that waited
        # a millisecond, and an idle queue's zeros would swamp its spread
        units.record(QUEUE, name, queue_wait_ms if queue_wait_ms > MIN_WAIT_MS else MIN_WAIT_MS)
    run = units.begin(JOB, name, sql=True, memory=True, queue_wait_ms=queue_wait_ms,
                      retries=retries)
    if run is not None:
        try:
            tracker_of(gate).started(run.name, gate.wall(), queue_wait_ms)
        except Exception as exc:
            gate.faults.record("jobs.start", exc)
    return run


def end(gate: UnitGate, run: UnitRun | JobRun, outcome: str = "success",
        error: BaseException | str | None = None) -> RequestRecord | None:
    """Finish a job run (see :meth:`pulsegate.units.Units.finish`); a
    :class:`~pulsegate.jobs.deferred.JobRun` is learnt on the scheduler thread
    (:mod:`pulsegate.jobs.deferred`): None."""
    if isinstance(run, JobRun):
        run.jobs.end(gate, run, outcome, error)
        return None
    record = gate.units.finish(run, outcome, error)
    if record is not None:
        try:
            tracker_of(gate).finished(run.name, run.outcome or outcome)
        except Exception as exc:
            gate.faults.record("jobs.end", exc)
    return record


#: The most retries a message is believed to say (a larger count is kept as this one).
MAX_RETRIES = 1_000_000


def retries_of(value: object) -> int:
    """A job's retry count as its message says it (Celery's ``request.retries``, RQ's
    ``number_of_retries``): whoever can publish writes it, so anything but an int >= 0
    is 0 (a string, NaN, infinity, a list: ``int()`` of them raised, and the run went
    unmeasured with a fault counted), and a count past :data:`MAX_RETRIES` is that.

    >>> retries_of(2), retries_of(None), retries_of("9" * 5000), retries_of(-1), retries_of(10**400)
    (2, 0, 0, 0, 1000000)
    """
    if type(value) is not int or value < 0:
        return 0
    return value if value < MAX_RETRIES else MAX_RETRIES
