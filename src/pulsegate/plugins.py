"""The narrow interfaces through which a subsystem plugs into a gate.

A component registers *itself* when it is built -- nothing finds it by a string path or
replaces another object's attribute -- and the registry, the exporters and the
controller depend on these interfaces (and on :mod:`pulsegate.records`), never on
:class:`~pulsegate.engine.PulseGate`: the engine imports them, they do not import it.

* a **request listener** ``(record, ctx) -> None`` sees finished requests: every one
  (``host.listeners``) or only notable ones (``host.notable_listeners``); a **start
  listener** ``(ctx, status) -> None`` sees the response start; a **unit listener**
  (``host.unit_listeners``, same signature) sees every finished unit run -- a job, an
  outbound call (:mod:`pulsegate.units`; notable runs reach the notable listeners too);
* a **job** runs off the request path on ``host.scheduler.every(seconds, fn, name)``;
* a **state provider** (``state()`` / ``load_state(data)``) is persisted by the registry
  with each snapshot and given its state back at start-up: ``plugs.add_state(name, p)``;
* a **tunable** (``get()`` / ``set(value)``) is the parameter a model version's tuned
  ``threshold`` drives: ``plugs.add_tunable(model_name, t)``;
* a **stats source** (``stats()``) adds a section to ``gate.stats()``:
  ``plugs.add_stats(name, s)``;
* a **report** ``() -> dict`` is a section of the dashboard's summary:
  ``plugs.add_report(name, fn)``;
* a **score** ``(subject) -> float`` is what a model currently thinks of a subject (the
  rate limiter's suspicion of a client), recorded with that model's predictions:
  ``plugs.add_score(model_name, fn)``;
* a **gauge** ``() -> float`` is a current value the exporters plot (the allocator's
  ``concurrency_limit`` and ``in_flight``): ``plugs.add_gauge(name, fn)``;
* a **switch listener** ``(row, incident) -> None`` is told of each action a control
  component switches on or off because of an incident (the healer's), on the thread
  that switched, never the request path: ``plugs.add_switch_listener(fn)`` (the
  detection stream publishes them);
* a **model catalog** (:class:`ModelCatalog`, the registry) lists the models with their
  accuracy and names the prediction behind a record or a detection, so the dashboard
  can ask for feedback on it: ``plugs.set_catalog(c)``;
* a **trace context** ``() -> object`` is read on a job's thread as the job starts, when
  the job is learnt on another thread (``job_learning="background"``): what it returns
  (OpenTelemetry's current context, the job's span in it) reaches the unit listeners as
  the run's ``trace``, so an exporter can place the record beside the job's span once
  that span has ended: ``plugs.set_trace_context(fn)``.

:class:`Host` is the gate as these components see it: its services (config, clocks,
fault counter, scheduler, counters) and the places to plug in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulsegate.config import Config
    from pulsegate.context import RequestContext
    from pulsegate.faults import FaultCounter
    from pulsegate.incidents import Incident, IncidentLog
    from pulsegate.learn.baseline import BaselineStore
    from pulsegate.records import RequestRecord

__all__ = ["Gauge", "Host", "ModelCatalog", "Plugs", "RequestListener", "Scheduling", "Setting",
           "StartListener", "StateProvider", "StatsSource", "SwitchListener", "Tunable"]

#: Called with each finished request's record and context.
RequestListener = Callable[["RequestRecord", "RequestContext"], None]
#: Called as ``(ctx, status)`` when a response starts, after its headers were scored.
StartListener = Callable[["RequestContext", int], None]
#: A current value worth plotting, read off the request path.
Gauge = Callable[[], float]
#: Called as ``(row, incident)`` after an action was switched on or off for an incident:
#: ``row`` has ``at``, ``state`` (``"on"``/``"off"``), ``action``, ``what``, ``endpoint``.
SwitchListener = Callable[[dict[str, Any], "Incident"], None]


class Scheduling(Protocol):
    """Where periodic jobs go (:class:`pulsegate.scheduler.Scheduler`): one background
    thread, never the request path."""

    def every(self, interval: float, fn: Callable[[], Any], name: str = "") -> Any: ...


class StateProvider(Protocol):
    """State worth keeping across a restart, as plain JSON-able data."""

    def state(self) -> Any: ...

    def load_state(self, data: Any) -> None: ...


class Tunable(Protocol):
    """A parameter a deployed model version sets (its tuned ``threshold``)."""

    def get(self) -> float: ...

    def set(self, value: float) -> None: ...


class StatsSource(Protocol):
    """A section of ``gate.stats()``: cheap to call, plain values."""

    def stats(self) -> dict[str, Any]: ...


class ModelCatalog(Protocol):
    """The models a gate runs, as the dashboard shows them (the registry is one)."""

    def model_rows(self) -> list[dict[str, Any]]:
        """One row per model: name, version, config, metrics and ``performance``."""
        ...

    def prediction_id(self, obj: object) -> str | None:
        """The id ``gate.feedback`` takes for an anomalous record or a query detection
        row ``(endpoint, detection)``; None when nothing was predicted about it."""
        ...

    def query_insights(self) -> list[dict[str, Any]]:
        """The N+1 detector's insights, one per endpoint, kind and fingerprint (copies),
        as :func:`pulsegate.queries.ranking.ranked_findings` takes them."""
        ...


class Setting:
    """A :class:`Tunable` made of a getter and a setter: the component that owns a
    parameter hands out access to it, nobody else names its attributes.

    >>> box = {"threshold": 0.5}
    >>> t = Setting(lambda: box["threshold"], lambda v: box.update(threshold=v))
    >>> t.set(0.8); t.get()
    0.8
    """

    __slots__ = ("_get", "_set")

    def __init__(self, get: Callable[[], float], set: Callable[[float], None]) -> None:
        self._get = get
        self._set = set

    def get(self) -> float:
        return float(self._get())

    def set(self, value: float) -> None:
        self._set(float(value))


class Plugs:
    """What one gate's components registered, by name. The registry reads it (it may be
    built after the components: everything registered before or after is seen)."""

    def __init__(self) -> None:
        self.states: dict[str, StateProvider] = {}
        self.tunables: dict[str, Tunable] = {}
        self.stats: dict[str, StatsSource] = {}
        self.scores: dict[str, Callable[[str], float]] = {}
        #: name -> ``report()``: a section of the dashboard's summary (the advisor's
        #: findings, patterns and capacity advice); called off the request path
        self.reports: dict[str, Callable[[], dict[str, Any]]] = {}
        self.gauges: dict[str, Gauge] = {}
        self.catalog: ModelCatalog | None = None
        #: optional components the gate hands out by name (``gate.multivariate``,
        #: ``gate.advisor``): kept here, not as attributes of the gate, so that a gate
        #: with every option on keeps under CPython's 30 shared instance keys (past them
        #: each attribute read on the request path takes the generic look-up)
        self.components: dict[str, Any] = {}
        #: told of each action switched on or off for an incident (the healer's)
        self.switch_listeners: list[SwitchListener] = []
        #: Called with the name of each state provider added from now on (the registry
        #: hands it a state read at start-up).
        self.on_state_added: list[Callable[[str], None]] = []
        #: read on a job's thread as it starts, when the job is learnt elsewhere
        self.trace_context: Callable[[], object] | None = None

    def add_state(self, name: str, provider: StateProvider) -> None:
        self.states[name] = provider
        for notify in list(self.on_state_added):
            notify(name)

    def add_tunable(self, name: str, tunable: Tunable) -> None:
        self.tunables[name] = tunable

    def add_stats(self, name: str, source: StatsSource) -> None:
        self.stats[name] = source

    def add_score(self, name: str, score: Callable[[str], float]) -> None:
        self.scores[name] = score

    def add_report(self, name: str, report: Callable[[], dict[str, Any]]) -> None:
        self.reports[name] = report

    def add_gauge(self, name: str, gauge: Gauge) -> None:
        self.gauges[name] = gauge

    def add_switch_listener(self, listener: SwitchListener) -> None:
        self.switch_listeners.append(listener)

    def set_catalog(self, catalog: ModelCatalog) -> None:
        self.catalog = catalog

    def set_trace_context(self, capture: Callable[[], object] | None) -> None:
        self.trace_context = capture


class Host(Protocol):
    """The gate as a plugged-in component sees it (:class:`~pulsegate.engine.PulseGate`
    is one): read-only services, the counters, the places to plug in, its reports, and
    the two values a deployed latency model sets (``model_version``, the header, and
    ``notable_score``, the lowest score the notable listeners see)."""

    model_version: str
    notable_score: float

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def wall(self) -> Callable[[], float]: ...

    @property
    def faults(self) -> FaultCounter: ...

    @property
    def scheduler(self) -> Scheduling: ...

    @property
    def plugs(self) -> Plugs: ...

    @property
    def counters(self) -> dict[str, int]: ...

    @property
    def listeners(self) -> list[RequestListener]: ...

    @property
    def notable_listeners(self) -> list[RequestListener]: ...

    @property
    def start_listeners(self) -> list[StartListener]: ...

    @property
    def unit_listeners(self) -> list[RequestListener]: ...

    @property
    def metrics(self) -> tuple[str, ...]: ...

    @property
    def baselines(self) -> BaselineStore: ...

    @property
    def recent_anomalies(self) -> deque[RequestRecord]: ...

    @property
    def incidents(self) -> IncidentLog: ...

    @property
    def detections(self) -> deque[dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...

    def endpoints(self) -> list[dict[str, Any]]: ...
