"""Job runs learnt on the gate's scheduler thread (``job_learning="background"``).

Inline (the default) a job's end costs the worker's thread the whole learning step: the
model update, the record, the publish step, the tracker (``benchmarks/job_overhead.py``:
≈ 2 200 bytecodes a Celery task). In the background the worker's thread reads the clocks,
lets go of the SQL sink (:meth:`pulsegate.units.Units.close`) and appends the run to a
queue; the queue wait's record and the tracker's start are queued the same way. The
scheduler drains the queue every 0.5 s, oldest first, through the same steps
(:meth:`~pulsegate.units.Units.learn`, ``units.record``, the tracker): the same models
learn the same figures, at most 0.5 s later. At :data:`MAX_PENDING` queued items the
worker drains them itself (none is dropped).

What the background gives up: the run's record no longer reaches listeners while the
job's span is open (OpenTelemetry's Celery span is not decorated with ``pulsegate.*``
attributes) and :class:`~pulsegate.jobs.JobScope` ``.record`` stays None.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from pulsegate.backlog import Backlog
from pulsegate.units import QUEUE

if TYPE_CHECKING:
    from pulsegate.jobs.tracker import JobTracker
    from pulsegate.units import Closed, UnitGate, UnitRun

__all__ = ["MAX_PENDING", "DeferredJobs"]

#: Items queued at most; the worker drains past it.
MAX_PENDING = 4096


class DeferredJobs:
    """The queue of one gate's job starts and ends, and its drain (into ``tracker``; a
    queue wait is learnt as at least ``min_wait_ms``, as inline)."""

    def __init__(self, gate: UnitGate, tracker: JobTracker, min_wait_ms: float) -> None:
        self._gate = weakref.ref(gate)
        self.tracker = tracker
        self.min_wait_ms = min_wait_ms
        self.pending: Backlog[tuple[Any, ...]] = Backlog(self._learn, self._fault, MAX_PENDING)

    def started(self, name: str, at: float, wait_ms: float | None) -> None:
        """A run of ``name`` began at wall time ``at`` after ``wait_ms`` queued."""
        self.pending.put((name, at, wait_ms))

    def ended(self, run: UnitRun, closed: Closed, outcome: str,
              error: BaseException | str | None) -> None:
        """A closed run (:meth:`pulsegate.units.Units.close`) to learn."""
        self.pending.put((run, closed, outcome, error))

    def drain(self) -> int:
        """Learn what is queued, oldest first; returns how many items."""
        if self._gate() is None:
            return 0
        return self.pending.drain()

    def _learn(self, item: tuple[Any, ...]) -> None:
        gate = self._gate()
        if gate is None:
            return
        if len(item) == 3:  # a start
            name, at, wait = item
            if wait is not None:
                least = self.min_wait_ms
                gate.units.record(QUEUE, name, wait if wait > least else least)
            self.tracker.started(name, at, wait)
        else:
            run, closed, outcome, error = item
            if gate.units.learn(run, outcome, error, closed) is not None:
                self.tracker.finished(run.name, run.outcome or outcome)

    def _fault(self, exc: Exception) -> None:
        gate = self._gate()
        if gate is not None:
            gate.faults.record("jobs.drain", exc)
