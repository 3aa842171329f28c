"""Job runs learnt on the gate's scheduler thread (``job_learning="background"``, the
default).

Inline (``job_learning="inline"``) a job's end costs the worker's thread the whole
learning step: the model update, the record, the publish step, the tracker
(``benchmarks/job_overhead.py``: ≈ 2 400 bytecodes a Celery task). In the background the
worker's thread keeps a :class:`JobRun` and does only this:

* at the start: reads the clocks (monotonic, thread CPU, the budgeted block count:
  :mod:`pulsegate.unit_blocks`), makes the run the query sink of its context and
  puts it on the queue -- one item a job;
* at the end: reads the clocks again, writes them and the outcome on the run (no second
  item) and lets go of the sink.

The scheduler drains the queue every 0.5 s, oldest first. For each run it learns the
start (the queue wait as ``QUEUE <name>``, at least ``min_wait_ms`` as inline; the
tracker's start, so a job that runs for minutes is seen started within 0.5 s, which
starvation needs) and, once the run has ended, its end through the same steps as inline
(:meth:`~pulsegate.units.Units.learn`: the ``JOB <name>`` model, the record, the publish
step; the tracker's outcome). A run still going is looked at again at the next drain. At
:data:`MAX_PENDING` queued runs the worker has the scheduler drain them at once and waits
for it at most :data:`OVERFLOW_WAIT` s (the drain runs the unit listeners: never on the
worker's thread, where one that blocks would block the job, or a request using
``observe_job``). If the queue is still full then -- a drain under way and stuck in a
unit listener (a synchronous span exporter whose collector never answers), or the
scheduler held by another job up to its limit -- the oldest queued runs are let go,
counted as ``jobs.overflow``, and the job goes on.

A run's request context -- the :class:`~pulsegate.units.UnitRun` the SQL hooks fill, that
``pulsegate.context.current()`` returns and cache and outbound calls tally on -- is made when
something asks for it while the job runs (:attr:`JobRun.request`, the attribute by which
a sink that is not itself a request names its request, as a ``capture()`` block does),
otherwise by the drain: a job that runs no SQL and makes no instrumented call costs its
thread no request context. The job's name is kept (:meth:`pulsegate.units.Units.name`)
once per run, by whichever of the two needs it first.

What the background gives up: the run's record no longer reaches listeners while the
job's span is open, and :class:`~pulsegate.jobs.JobScope` ``.record`` stays None. What
it keeps: when an exporter set ``gate.plugs.trace_context`` (OpenTelemetry's does), the
context the job started in is read as it starts and handed to the unit listeners with
the run (``UnitRun.trace``), so the record reaches the job's trace after its span ended
(:mod:`pulsegate.export.otel`: a child span of the job's).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

from pulsegate.context import leave, query_sink
from pulsegate.queries import eager
from pulsegate.units import JOB, QUEUE, UnitRun

if TYPE_CHECKING:
    from contextvars import Token

    from pulsegate.context import QuerySink
    from pulsegate.jobs.tracker import JobTracker
    from pulsegate.queries.events import QueryEvent
    from pulsegate.units import UnitGate

__all__ = ["DRAIN_JOB", "MAX_PENDING", "OVERFLOW_WAIT", "DeferredJobs", "JobRun", "QueueStamp"]

#: Runs queued at most; the worker drains past it. Also the most runs kept as running
#: between drains: past it the oldest are let go (a run whose end never comes -- its
#: thread killed -- is the oldest; letting the newest go instead would lose the end of
#: every later job still running at a drain).
MAX_PENDING = 4096
#: The scheduler job that drains the queue (every 0.5 s).
DRAIN_JOB = "pulsegate.jobs.learn"
#: Seconds a worker that finds MAX_PENDING runs queued waits for the scheduler's drain.
OVERFLOW_WAIT = 5.0
#: A run's end: (clock, duration s, cpu ms, blocks, outcome, the error's name).
Ended = tuple[float, float, "float | None", "int | None", str, "str | None"]
#: The end of a run whose clocks could not be read (a fault, counted): nothing to learn.
UNMEASURED: Final[tuple[()]] = ()


class QueueStamp(Protocol):
    """What a job's message says of its wait in the queue, read unparsed on the worker's
    thread (``pulsegate.jobs.celery.PublishStamp``); the drain asks it for the wait."""

    def wait_ms(self, now: float) -> float | None:
        """The wait (ms) of a run that started at ``now`` (epoch s); None: unknown."""


class JobRun:
    """One job run as its worker's thread keeps it (see the module). The query sink of
    the job's context (:class:`~pulsegate.context.QuerySink`): its statements go to its
    :attr:`request`. ``name`` is the job's name as given; ``kept`` the name it is learnt
    under, once decided."""

    __slots__ = ("call_sites", "cpu0", "ended", "finished", "jobs", "kept", "mem0", "name",
                 "queue_wait_ms", "retries", "run", "stamp", "start", "token", "trace")

    def __init__(self, jobs: DeferredJobs, name: object, start: float, cpu0: float | None,
                 mem0: int | None, queue_wait_ms: float | None, retries: int,
                 stamp: QueueStamp | None) -> None:
        self.jobs = jobs
        self.name = name
        self.start = start
        self.cpu0 = cpu0
        self.mem0 = mem0
        #: the wait, if known; else worked out of ``stamp`` by the drain
        self.queue_wait_ms = queue_wait_ms
        self.stamp = stamp
        self.retries = retries
        self.call_sites = jobs.call_sites
        self.finished = False
        self.token: Token[QuerySink | None] | None = None
        self.kept: str | None = None
        #: the request context, once made (see the module)
        self.run: UnitRun | None = None
        #: written once, by its end: :data:`Ended`, or :data:`UNMEASURED`
        self.ended: Ended | tuple[()] | None = None
        #: the tracing context the job started in (``gate.plugs.trace_context``), if any
        self.trace: object = None

    @property
    def request(self) -> UnitRun | None:
        """The run as a request context, made on first use while the job runs (after
        its end: the one made, finished, or None -- nothing more is added to it)."""
        run = self.run
        if run is None and not self.finished:
            run = self.jobs.context_of(self)
        return run

    def add_query(self, event: QueryEvent) -> None:
        run = self.request
        if run is not None:
            run.add_query(event)

    # The request's statements, as the Django hooks read them off the sink.
    @property
    def queries(self) -> list[QueryEvent] | None:
        run = self.run
        return None if run is None else run.queries

    @property
    def query_count(self) -> int:
        run = self.run
        return 0 if run is None else run.query_count


class DeferredJobs:
    """One gate's queue of job runs, and its drain (into ``tracker``; a queue wait is
    learnt as at least ``min_wait_ms``, as inline)."""

    def __init__(self, gate: UnitGate, tracker: JobTracker, min_wait_ms: float) -> None:
        self._gate = weakref.ref(gate)
        self.tracker = tracker
        self.min_wait_ms = min_wait_ms
        c = gate.config
        self.sql = c.query_analysis
        self.cpu = c.measure_cpu
        self.call_sites = c.capture_call_sites
        self.max_queries = c.max_queries_per_request
        self.pending: deque[JobRun] = deque()
        #: runs seen started and not yet ended, looked at again at each drain
        self.running: list[JobRun] = []
        self._drain_lock = threading.Lock()
        self._name_lock = threading.Lock()
        #: a worker waited in vain for the scheduler's drain, and no drain ended since
        self.stalled = False

    # --- the worker's thread ----------------------------------------------------------

    def begin(self, gate: UnitGate, name: object, queue_wait_ms: float | None,
              retries: int, stamp: QueueStamp | None = None) -> JobRun | None:
        """A run of ``name`` begins on this thread, after ``queue_wait_ms`` in its queue
        (or as ``stamp`` will say); None when the gate is off or on a fault."""
        if not gate.enabled:
            return None
        try:
            scheduler = gate.scheduler
            if not scheduler.started and scheduler.jobs:
                scheduler.ensure_started()  # (its drain learns the run)
            pending = self.pending
            if len(pending) >= MAX_PENDING:  # before the clocks: pulsegate's time, not the job's
                self._overflow(gate)
            cpu0 = gate.cpu_clock() if self.cpu else None
            mem0 = gate.units.memory.count()
            run = JobRun(self, name, gate.clock(), cpu0, mem0, queue_wait_ms, retries, stamp)
            capture = gate.plugs.trace_context
            if capture is not None:  # (an exporter's: the job's span, for the drain)
                try:
                    run.trace = capture()
                except Exception as exc:  # the run is still measured, without its span
                    gate.faults.record("jobs.trace", exc)
            pending.append(run)
            if self.sql:  # last: a run that failed to begin is never the sink
                run.token = query_sink.set(run)
            return run
        except Exception as exc:
            gate.faults.record("jobs.start", exc)
            return None

    def end(self, gate: UnitGate, run: JobRun, outcome: str,
            error: BaseException | str | None) -> None:
        """The run ended on this thread (``outcome`` as for
        :meth:`pulsegate.units.Units.finish`)."""
        if run.finished:
            return
        run.finished = True
        ended: Ended | tuple[()] = UNMEASURED
        try:
            now = gate.clock()
            duration = now - run.start
            gate.units.memory.earn(duration)
            cpu0, mem0 = run.cpu0, run.mem0
            # the exception's name, all that is learnt of it: the exception would keep its
            # traceback's frames, and every local of the job, alive until the drain
            name = error if error is None or isinstance(error, str) else type(error).__name__
            ended = (now, duration, None if cpu0 is None else (gate.cpu_clock() - cpu0) * 1000.0,
                     None if mem0 is None else sys.getallocatedblocks() - mem0, outcome, name)
        except Exception as exc:
            gate.faults.record("jobs.end", exc)
        finally:
            context = run.run
            if context is not None:
                context.finished = True
            run.ended = ended
            leave(run)

    def context_of(self, run: JobRun) -> UnitRun:
        """``run``'s request context, made once (any thread)."""
        with self._name_lock:
            context = run.run
            if context is None:
                context = run.run = UnitRun(JOB, self._kept(run), run.start, run.cpu0,
                                            run.mem0, self.max_queries, self.call_sites)
                context.queue_wait_ms = run.queue_wait_ms
                context.retries = run.retries
                context.trace = run.trace
        return context

    def _kept(self, run: JobRun) -> str:
        """The name ``run`` is learnt under, decided once (under ``_name_lock``)."""
        kept = run.kept
        if kept is None:
            gate = self._gate()
            kept = run.kept = gate.units.name(JOB, run.name) if gate is not None else "?"
        return kept

    # --- the scheduler's thread -------------------------------------------------------

    def drain(self, wait: bool = True) -> int:
        """Learn the starts of the runs queued since the last drain, and the ends of those
        that ended; returns how many starts and ends were learnt. ``wait`` False: none
        (-1) when another drain is under way -- that one learns what is queued."""
        gate = self._gate()
        if gate is None or not self._drain_lock.acquire(blocking=wait):
            return -1 if gate is not None else 0
        try:
            return self._drain(gate)
        finally:
            self._drain_lock.release()

    def drain_due(self) -> int:
        """The scheduler's drain (every 0.5 s, and the flush of ``gate.close()``): skipped
        while another drain is under way, so neither the scheduler nor a closing process
        waits for a drain stuck in a unit listener."""
        return max(self.drain(wait=False), 0)

    def _overflow(self, gate: UnitGate) -> None:
        """A worker finds MAX_PENDING runs queued: it has the scheduler drain them now
        (on the scheduler's runner: a unit listener never runs on the worker's thread)
        and waits for that at most :data:`OVERFLOW_WAIT` s. What is still queued past
        ``MAX_PENDING - 1`` then (a drain under way and stuck in a listener, the
        scheduler held by another job, a drain slower than the jobs) is let go, oldest
        first, counted as ``jobs.overflow``. One worker waits per stall: after a wait in
        vain the next ones let go at once, until a drain has ended."""
        if not self.stalled and not gate.scheduler.run_now(DRAIN_JOB, OVERFLOW_WAIT):
            self.stalled = True  # (the next workers do not wait, until a drain ends)
        pending, let_go = self.pending, 0
        while len(pending) >= MAX_PENDING:
            try:
                pending.popleft()
            except IndexError:  # (that drain took them meanwhile)
                break
            let_go += 1
        if let_go:
            gate.faults.record("jobs.overflow", OverflowError(
                f"{let_go} job runs let go: a drain is under way and not ending"))

    def _drain(self, gate: UnitGate) -> int:
        learnt = 0
        running, self.running = self.running, []
        for run in running:
            learnt += self._look(gate, run)
        pending = self.pending
        while pending:
            try:
                run = pending.popleft()
            except IndexError:  # (a worker let the oldest go past MAX_PENDING meanwhile)
                break
            learnt += self._start(gate, run) + self._look(gate, run)
        del self.running[:-MAX_PENDING]  # (in start order: the oldest go)
        self.stalled = False
        return learnt

    def _start(self, gate: UnitGate, run: JobRun) -> int:
        try:
            at = run.start + gate.wall_offset.at(gate.clock())
            wait = run.queue_wait_ms
            if wait is None and run.stamp is not None:
                wait = run.queue_wait_ms = run.stamp.wait_ms(at)
            if wait is not None:
                least = self.min_wait_ms
                gate.units.record(QUEUE, run.name, wait if wait > least else least)
            with self._name_lock:
                kept = self._kept(run)
            self.tracker.started(kept, at, wait)
            return 1
        except Exception as exc:
            gate.faults.record("jobs.drain", exc)
            return 0

    def _look(self, gate: UnitGate, run: JobRun) -> int:
        """Learn ``run``'s end if it came, else keep it as running."""
        ended = run.ended
        if ended is None:
            self.running.append(run)
            return 0
        if not ended:  # UNMEASURED
            return 0
        try:
            context = self.context_of(run)
            context.finished = True
            context.queue_wait_ms = run.queue_wait_ms  # (known now: see _start)
            if eager.watching:  # what the ORM hooks recorded against the sink
                eager.moved(run, context)
            now, duration, cpu_ms, mem, outcome, error = ended
            if gate.units.learn(context, outcome, error, (now, duration, cpu_ms, mem)) is None:
                return 0
            self.tracker.finished(context.name, context.outcome or outcome)
            return 1
        except Exception as exc:
            gate.faults.record("jobs.drain", exc)
            return 0
