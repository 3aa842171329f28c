"""Units of work that are not HTTP requests -- a job, its queue wait, an outbound call,
a cache pattern -- measured, learnt and reported by the gate's own machinery.

A *unit* is named ``"<KIND> <name>"`` (``"JOB send_email"``), the way an endpoint is
``"GET /users/{id}"``; its runs are learnt by an ordinary
:class:`~pulsegate.learn.endpoint.EndpointModel` in the gate's one
:class:`~pulsegate.learn.baseline.BaselineStore` (incident detection included), and each
finished run is an ordinary :class:`~pulsegate.records.RequestRecord` (``method`` the
kind, ``route`` and ``path`` the name) handed to the engine's publish step: recent
anomalies, incidents, the notable listeners (registry predictions and alerts, logs), and
``gate.unit_listeners`` (the exporters' unit handlers). SQL run inside a unit that asked
for it (``sql=True``) is analysed like a request's: an N+1 is reported against the
unit's key. No model, detector or store is copied.

A kind can never be mistaken for an HTTP method: the engine folds every method outside
HTTP's own into ``OTHER``, so no endpoint key starts with ``JOB`` or ``UPSTREAM``. Use:
``run = gate.units.begin(JOB, "send_email", sql=True)`` then ``gate.units.finish(run,
"success")`` (None: gate off or a fault); ``with gate.units.observe(UPSTREAM, name):``
(or ``async with``); ``gate.units.record(QUEUE, name, 1250.0)`` for a run measured
elsewhere.

Names are bounded: at most ``max_units`` per kind keep a model, the others fold into
``"<KIND> (other)"``. A slot goes to the name in use (:mod:`pulsegate.unit_names`): one
held by a name little used lately is taken by a new name used more (its model
dropped), so neither a spray of one-shot names arriving first nor one arriving later
keeps a busy name out. Callers pass a low-cardinality name -- a job's registered name, an upstream
host, a key *pattern* -- never arguments, URLs with their query or raw keys: it is
exported as given. Nothing here raises into the work measured: a fault is counted in
``gate.faults`` and the run goes on unmeasured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

from pulsegate.context import NO_DETECTIONS, RequestContext, leave, query_sink
from pulsegate.plugins import Host, RequestListener
from pulsegate.records import RequestInfo, RequestRecord
from pulsegate.scoring import log_ms
from pulsegate.unit_blocks import BlockBudget
from pulsegate.unit_names import NameSlots

if TYPE_CHECKING:
    from pulsegate.learn.endpoint import EndpointModel
    from pulsegate.queries.requests import RequestQueries
    from pulsegate.sampling import WallOffset
    from pulsegate.scheduler import Scheduler
    from pulsegate.scoring import MetricValues

__all__ = ["CACHE", "JOB", "MAX_UNIT_NAME", "OUTCOME_STATUS", "OVERFLOW_NAME", "QUEUE",
           "UNIT_KINDS", "UPSTREAM", "UnitGate", "UnitRun", "UnitScope", "Units", "is_unit", "unit_key"]

#: The kinds: a job's run (pulsegate.jobs); its wait in the queue, publish to start (the
#: name is the job's); an outbound call to an upstream; a cache operation by pattern.
JOB: Final = "JOB"
QUEUE: Final = "QUEUE"
UPSTREAM: Final = "UPSTREAM"
CACHE: Final = "CACHE"
UNIT_KINDS: Final = frozenset({JOB, QUEUE, UPSTREAM, CACHE})

#: A run's outcome -> its record's status. A status of 500 or more is the incident
#: detector's error evidence, as for a failed request.
OUTCOME_STATUS: Final = {"success": 200, "retry": 503, "failure": 500, "timeout": 504}
#: A closed run's measures (:meth:`Units.close`): (clock, duration s, cpu ms, blocks).
Closed = tuple[float, float, "float | None", "int | None"]
#: Longest unit name kept (longer ones are cut).
MAX_UNIT_NAME: Final = 200
#: Where the names of a kind past its ``max_units`` fold.
OVERFLOW_NAME: Final = "(other)"
_UNNAMED = "(unnamed)"


def unit_key(kind: str, name: str) -> str:
    """The key of a unit's model, ``"<KIND> <name>"``.

    >>> unit_key(JOB, "send_email")
    'JOB send_email'
    """
    return f"{kind} {name}"


def is_unit(record: RequestRecord) -> bool:
    """Whether ``record`` is a unit's run rather than an HTTP request."""
    return record.method in UNIT_KINDS


def clean_name(name: object) -> str:
    """A name as it may be kept and exported: a string, printable, at most
    :data:`MAX_UNIT_NAME` characters.

    >>> clean_name("send\\nmail"), clean_name(""), len(clean_name("x" * 500))
    ('send?mail', '(unnamed)', 200)
    """
    text = name if isinstance(name, str) else str(name)
    text = text[:MAX_UNIT_NAME]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text or _UNNAMED


class UnitGate(Host, Protocol):
    """The gate as :class:`Units` sees it (``PulseGate`` is one): a ``Host``, plus the
    request path's pieces a run uses too (clocks, metric layout, queries, publish)."""

    enabled: bool

    @property
    def scheduler(self) -> Scheduler: ...

    @property
    def cpu_clock(self) -> Callable[[], float]: ...

    @property
    def wall_offset(self) -> WallOffset: ...

    @property
    def values(self) -> MetricValues: ...

    @property
    def queries(self) -> RequestQueries: ...

    @property
    def unit_listeners(self) -> list[RequestListener]: ...

    @property
    def units(self) -> Units: ...

    def publish(self, out: RequestRecord, ctx: RequestContext, model: EndpointModel,
                incident: Any, listeners: list[RequestListener]) -> None: ...


class UnitRun(RequestContext):
    """One run of a unit: a :class:`~pulsegate.context.RequestContext` (so the SQL hooks
    find it while it is the query sink, and every listener reads it as it reads a
    request's), plus what a request does not have. ``attrs`` is for small fixed facts
    an exporter may show (a queue name, a status class), never user data. ``trace`` is
    the tracing context the run started in when it is learnt on another thread
    (:attr:`pulsegate.plugins.Plugs.trace_context`), else None: the current one is
    the run's."""

    __slots__ = ("attrs", "kind", "name", "outcome", "queue_wait_ms", "retries", "trace")

    def __init__(self, kind: str, name: str, start: float, cpu0: float | None,
                 mem0: int | None, max_queries: int, call_sites: bool) -> None:
        super().__init__(RequestInfo(kind, name, name, scheme="unit"), start, cpu0, mem0,
                         max_queries, call_sites)
        self.kind = kind
        self.name = name
        self.queue_wait_ms: float | None = None
        self.retries = 0
        self.outcome: str | None = None
        self.attrs: dict[str, str | int | float] = {}
        self.trace: object = None


class Units:
    """``gate.units``: begins and finishes unit runs against one gate (see the module)."""

    def __init__(self, gate: UnitGate) -> None:
        self.gate = gate
        c = gate.config
        self.max_units = c.units.max_units
        self._query_analysis = c.query_analysis
        self._cpu = c.measure_cpu
        #: the block counts' budget (:mod:`pulsegate.unit_blocks`)
        self.memory = BlockBudget(gate.clock, c.measure_memory)
        self._anomaly_detection = c.anomaly_detection
        #: kind -> its kept names
        self.names: dict[str, NameSlots] = {}
        #: kind -> names refused past the cap
        self.folded: dict[str, int] = {}
        #: kind -> outcome -> runs finished
        self.runs: dict[str, dict[str, int]] = {}
        gate.plugs.add_stats("units", self)

    def name(self, kind: str, name: object) -> str:
        """The name a run of ``kind`` called ``name`` is kept under: cleaned
        (:func:`clean_name`), or :data:`OVERFLOW_NAME` while it has no slot among the
        ``max_units`` of its kind (:class:`~pulsegate.unit_names.NameSlots`; a name
        that loses its slot loses its model)."""
        text = clean_name(name)
        slots = self.names.get(kind)
        if slots is None:
            slots = self.names.setdefault(kind, NameSlots(self.max_units, self._dropper(kind)))
        if slots.use(text):
            return text
        self.folded[kind] = self.folded.get(kind, 0) + 1
        return OVERFLOW_NAME

    def _dropper(self, kind: str) -> Callable[[str], None]:
        """What drops the model of a name of ``kind`` that lost its slot."""
        gate = self.gate
        return lambda name: gate.baselines.discard(unit_key(kind, name))

    # --- a run ------------------------------------------------------------------------

    def begin(self, kind: str, name: object, *, sql: bool = False, cpu: bool = True,
              memory: bool = False, queue_wait_ms: float | None = None,
              retries: int = 0) -> UnitRun | None:
        """Start measuring a run; None when the gate is off (or on a fault).

        ``sql``: the run collects the SQL statements run in its context (jobs; not an
        outbound call inside a request, whose statements stay the request's); ``cpu``:
        measure its thread CPU time (``measure_cpu`` on); ``memory``: its allocated
        block delta (``measure_memory`` on), within 1 % of the units' measured time
        (:mod:`pulsegate.unit_blocks`: a job of 50 ms or more is counted every time
        even in a large process, a burst of tiny ones one time in many)."""
        gate = self.gate
        if not gate.enabled or kind not in UNIT_KINDS:
            return None
        try:
            scheduler = gate.scheduler
            if not scheduler.started and scheduler.jobs:
                scheduler.ensure_started()
            cpu0 = gate.cpu_clock() if cpu and self._cpu else None
            mem0 = self.memory.count() if memory else None
            start = gate.clock()
            if start >= gate.wall_offset.due:
                gate.wall_offset.sync(start)
            run = UnitRun(kind, self.name(kind, name), start, cpu0, mem0,
                          gate.config.max_queries_per_request,
                          gate.config.capture_call_sites)
            run.queue_wait_ms = queue_wait_ms
            run.retries = retries
            if sql and self._query_analysis:
                run.token = query_sink.set(run)
            return run
        except Exception as exc:
            gate.faults.record("units.begin", exc)
            return None

    def finish(self, run: UnitRun, outcome: str = "success",
               error: BaseException | str | None = None,
               duration: float | None = None,
               cpu_ms: float | None = None) -> RequestRecord | None:
        """End of the run: :meth:`close` it, then :meth:`learn` it (None if it was
        finished already, or on a fault). ``outcome`` is a key of :data:`OUTCOME_STATUS`
        (anything else counts as ``"failure"``); ``error`` names what went wrong;
        ``duration`` (seconds) and ``cpu_ms`` replace the ones measured (a run measured
        elsewhere: another process)."""
        closed = self.close(run, duration, cpu_ms)
        return None if closed is None else self.learn(run, outcome, error, closed)

    def close(self, run: UnitRun, duration: float | None = None,
              cpu_ms: float | None = None) -> Closed | None:
        """The calling thread's half of :meth:`finish`: the clocks read, the SQL sink
        let go of. Returns ``(now, duration s, cpu ms, blocks)`` for :meth:`learn`
        (None: finished already, or a fault)."""
        if run.finished:
            return None
        run.finished = True
        gate = self.gate
        try:
            now = gate.clock()
            if duration is None:
                duration = now - run.start
                # (only time measured here earns block-count credit: a queue wait or a
                # call timed elsewhere is no time this process spent)
                self.memory.earn(duration)
            if run.cpu0 is not None:
                cpu_ms = (gate.cpu_clock() - run.cpu0) * 1000.0
            mem = None if run.mem0 is None else sys.getallocatedblocks() - run.mem0
            return now, duration, cpu_ms, mem
        except Exception as exc:
            gate.faults.record("units.finish", exc)
            return None
        finally:
            leave(run)

    def learn(self, run: UnitRun, outcome: str, error: BaseException | str | None,
              closed: Closed) -> RequestRecord | None:
        """:meth:`finish`'s learning of a closed run, on any thread: the unit's model,
        its record, the publish step (None on a fault)."""
        gate = self.gate
        now, duration, cpu_ms, mem = closed
        try:
            if outcome not in OUTCOME_STATUS:
                outcome = "failure"
            status = OUTCOME_STATUS[outcome]
            run.outcome = outcome
            run.status = status
            if error is not None:
                run.error = error if isinstance(error, str) else type(error).__name__
            by_outcome = self.runs.setdefault(run.kind, {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
            model = gate.baselines.get(unit_key(run.kind, run.name))
            view = model.view
            detections: Any = NO_DETECTIONS
            if run.query_count:
                detections = gate.queries.finish(run, model.key)
                model.queried = True
            values = gate.values.learned(
                model.queried, cpu_ms, run.query_count, run.query_ms,
                detections.repeat_share if run.query_count else 0.0, mem)
            score, anomalous, driver, incident = model.update(log_ms(duration), values,
                                                              True, now)
            if status >= 500:
                model.error()
            record = RequestRecord.of_request(
                run, run.kind, status, started_at=run.start + gate.wall_offset.offset,
                duration_ms=duration * 1000.0, cpu_ms=cpu_ms, memory_blocks=mem,
                anomaly_score=score, confidence=view[1], predicted_ms=view[0],
                detections=len(detections),
                anomaly_metric=model.metrics[driver] if driver >= 0 else None,
                anomalous=anomalous and self._anomaly_detection)
            gate.publish(record, run, model, incident, gate.unit_listeners)
            return record
        except Exception as exc:
            gate.faults.record("units.finish", exc)
            return None

    def observe(self, kind: str, name: object, **options: Any) -> UnitScope:
        """A run as a block (:class:`UnitScope`); ``options`` as for :meth:`begin`."""
        return UnitScope(self, kind, name, options)

    def record(self, kind: str, name: object, duration_ms: float, *,
               outcome: str = "success", error: str | None = None, retries: int = 0,
               queue_wait_ms: float | None = None, cpu_ms: float | None = None,
               attrs: dict[str, str | int | float] | None = None) -> RequestRecord | None:
        """A run measured by someone else (an event hook that timed the call, a queue
        wait read off a message), learnt and published like one measured here."""
        run = self.begin(kind, name, cpu=False, queue_wait_ms=queue_wait_ms,
                         retries=retries)
        if run is None:
            return None
        seconds = duration_ms / 1000.0
        run.start -= seconds if seconds > 0.0 else 0.0  # (NaN: the model refuses it)
        if attrs:
            run.attrs.update(attrs)
        return self.finish(run, outcome, error, duration=seconds, cpu_ms=cpu_ms)

    # --- reporting --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``gate.stats()["units"]``: per kind, names kept, uses folded, names that
        lost their slot, runs by outcome."""
        kinds = set(self.names) | set(self.runs)
        return {kind: {"names": len(self.names[kind]) if kind in self.names else 0,
                       "folded": self.folded.get(kind, 0),
                       "evicted": self.names[kind].evicted if kind in self.names else 0,
                       "runs": dict(self.runs.get(kind, {}))} for kind in sorted(kinds)}


class UnitScope:
    """``with gate.units.observe(kind, name) as scope:`` (or ``async with``): a run
    begins on entry and finishes on exit -- as ``scope.outcome`` says (``"success"``
    unless set), or as a ``"failure"`` named after the exception that left the block
    (which still propagates). ``scope.run`` is the run (None when not measured)."""

    __slots__ = ("kind", "name", "options", "outcome", "record", "run", "units")

    def __init__(self, units: Units, kind: str, name: object, options: dict[str, Any]) -> None:
        self.units = units
        self.kind = kind
        self.name = name
        self.options = options
        self.outcome = "success"
        self.run: UnitRun | None = None
        self.record: RequestRecord | None = None

    def __enter__(self) -> UnitScope:
        self.run = self.units.begin(self.kind, self.name, **self.options)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        run = self.run
        if run is None:
            return
        if exc is not None:
            self.record = self.units.finish(run, "failure", exc)
        else:
            self.record = self.units.finish(run, self.outcome)

    async def __aenter__(self) -> UnitScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)
