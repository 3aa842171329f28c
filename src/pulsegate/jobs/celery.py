"""Celery, with one line: ``pulsegate.jobs.celery.instrument(app)`` (in the module that
makes the app, so the producers and the workers both run it).

* Producer: the signal ``before_task_publish`` gives the message a header
  ``pulsegate_published``, the wall-clock time it was sent (retries are re-published,
  so a retry's wait counts from its own publish).
* Worker: the run is measured around the task's body through Celery's own extension
  point for it, ``Task.__call__``. Celery's tracer (``celery/app/trace.py``,
  ``build_tracer``) calls the task object instead of ``task.run`` when
  ``task_has_custom(task, "__call__")``, which is true when ``__call__`` of
  ``celery.app.task.Task`` comes from another module than Celery's (its check for a
  monkey-patched base, the one Celery's own worker uses for its stack protection). So
  ``instrument`` puts :func:`task_call` there: every task of every app and base class,
  no signal dispatched per job. Called by the tracer (the request on the task's stack is
  the tracer's: not ``called_directly``), it runs ``task.run`` inside a run; called
  directly (``add(1, 2)``) it is Celery's own ``__call__``. Celery's worker replaces the
  base ``__call__`` at start-up (``_install_stack_protection``); :func:`task_call` does
  what that replacement does and is put back on ``worker_init`` /
  ``worker_process_init``.

  The run's queue wait is :math:`\\max(0,\\ t_{start} - \\max(t_{published}, t_{eta}))` --
  a task given an ``eta`` or a ``countdown`` is not waiting before that time. Without
  the header (a producer that did not run ``instrument``) the wait is unknown, not
  zero. Producer and worker clocks are assumed in step (NTP): a skew shows in the wait.
  With ``job_learning="background"`` the worker's thread only reads the header and the
  ``eta`` (:class:`PublishStamp`); the scheduler's thread works the wait out.
  The run ends as ``"success"``, ``"retry"`` (the body raised Celery's ``Retry``),
  ``"failure"`` (named after the exception) -- or ``"success"`` for ``Ignore`` and
  ``Reject`` -- inside the tracer, before ``task_postrun``, where OpenTelemetry ends
  the task's span, so a JOB record still finds that span open. The execution time is the
  body's: the result backend's store and the callbacks' dispatch after it are Celery's.

Task names are the registered ones (``app.tasks``' keys): low cardinality by
construction; arguments are never read. Nothing raises into Celery: a fault is counted
by the gate and the task runs as if pulsegate were absent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from celery import signals
from celery.app.task import Task as BaseTask
from celery.exceptions import Ignore, Reject, Retry

from pulsegate.autoinstrument import instrument_orms
from pulsegate.jobs import get_gate
from pulsegate.jobs.deferred import DeferredJobs, JobRun
from pulsegate.jobs.runs import deferred_of, end, retries_of, start
from pulsegate.scheduler import call_within

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate
    from pulsegate.units import UnitRun

__all__ = ["CHILD_EXIT_SECONDS", "HEADER", "CeleryJobs", "PublishStamp", "instrument",
           "priority_lists", "queue_wait_ms", "stamp_of", "task_call",
           "uninstrument", "watch_queues"]

#: The message header carrying the publish time (epoch seconds).
HEADER = "pulsegate_published"
#: The longest a pool child's exit waits for its gate's close (``worker_process_shutdown``):
#: a snapshot to Redis (2 s timeouts) and a drain fit; a listener that never returns does not.
CHILD_EXIT_SECONDS = 10.0
#: The longest string a publish header or an ``eta`` is read from: an epoch float's
#: ``repr`` or an ISO 8601 time with microseconds and an offset fits in 32 characters.
MAX_TIME_CHARS = 64
#: The earliest publish time believed (2000-01-01 UTC): an older one is no clock's.
EARLIEST_PUBLISH = 946_684_800.0

_installed: CeleryJobs | None = None
_lock = threading.Lock()


class CeleryJobs:
    """One instrumentation: the publish receiver and the runs :func:`task_call` begins
    and ends; ``gate`` None: :func:`get_gate` chooses on the first job (in a prefork
    worker: in the child, after the fork)."""

    def __init__(self, gate: PulseGate | None = None) -> None:
        self._gate = gate
        #: the gate's background queue when it learns jobs there (job_learning=
        #: "background"), looked up once: None until the first job, or inline
        self._background: DeferredJobs | None = None
        self._chosen = False

    @property
    def gate(self) -> PulseGate:
        gate = self._gate
        if gate is None:
            gate = self._gate = get_gate()
            instrument_orms(gate)  # the worker's SQL, as a web app's middleware would
        return gate

    def _first_job(self) -> PulseGate:
        """The gate, and where it learns jobs (a gate's config does not change)."""
        gate = self.gate
        if gate.config.units.job_learning == "background":
            self._background = deferred_of(gate)
        self._chosen = True
        return gate

    def connect(self) -> None:
        signals.before_task_publish.connect(self.on_publish, weak=False,
                                            dispatch_uid="pulsegate.publish")
        for signal in _WORKER_STARTS:
            signal.connect(_put_back, weak=False, dispatch_uid="pulsegate.call")
        signals.worker_process_shutdown.connect(self.on_child_exit, weak=False,
                                                dispatch_uid="pulsegate.exit")
        _put_back()

    def disconnect(self) -> None:
        signals.before_task_publish.disconnect(dispatch_uid="pulsegate.publish")
        for signal in _WORKER_STARTS:
            signal.disconnect(dispatch_uid="pulsegate.call")
        signals.worker_process_shutdown.disconnect(dispatch_uid="pulsegate.exit")
        if _delegate and BaseTask.__dict__.get("__call__") is task_call:
            BaseTask.__call__ = _delegate.pop()  # type: ignore[method-assign]

    # --- producer -----------------------------------------------------------------------

    def on_publish(self, sender: Any = None, headers: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
        if isinstance(headers, dict):
            headers[HEADER] = time.time()

    # --- worker -------------------------------------------------------------------------

    def on_child_exit(self, **kwargs: Any) -> None:
        """A prefork pool child is about to leave through ``os._exit`` (billiard), which
        runs no ``atexit`` handler: close its gate here, so the runs of its last moments
        are learnt (background mode learns them on the scheduler) and its state is saved
        (``state_dir``/``state_redis_url``)."""
        gate = self._gate
        if gate is None:
            return
        # On a thread of its own, waited for CHILD_EXIT_SECONDS at most: the close runs
        # the unit listeners (a span exporter), alert webhooks and the state store, and a
        # child that never leaves holds its pool slot (os._exit then ends the thread).
        if not call_within(lambda: self._close(gate), CHILD_EXIT_SECONDS,
                           "pulsegate-child-exit"):
            self._fault("celery.child_exit", TimeoutError(
                f"gate.close() still running after {CHILD_EXIT_SECONDS} s"))

    def _close(self, gate: PulseGate) -> None:
        try:
            gate.close()
        except Exception as exc:  # the child is leaving: nothing to fail, count it
            self._fault("celery.child_exit", exc)

    def begin(self, task: Any, request: Any) -> UnitRun | JobRun | None:
        """A run of ``task`` as the tracer's ``request`` describes it (None: not
        measured)."""
        try:
            gate = self._gate
            if gate is None or not self._chosen:
                gate = self._first_job()
            retries = retries_of(getattr(request, "retries", 0))
            background = self._background
            if background is not None:  # (runs.start's choice, made once); the wait is
                # worked out on the scheduler's thread
                return background.begin(gate, task.name, None, retries, stamp_of(request))
            return start(gate, task.name, queue_wait_ms=queue_wait_ms(request, time.time()),
                         retries=retries)
        except Exception as exc:
            self._fault("celery.prerun", exc)
            return None

    def end(self, run: UnitRun | JobRun, outcome: str, error: BaseException | None) -> None:
        gate = self._gate
        assert gate is not None  # (the begin that made the run chose it)
        try:
            end(gate, run, outcome, error)  # (a JobRun: learnt in the background)
        except Exception as exc:
            self._fault("celery.end", exc)

    def _fault(self, where: str, exc: Exception) -> None:
        gate = self._gate
        if gate is not None:
            gate.faults.record(where, exc)


#: Sent once a worker (``worker_init``) or a pool child (``worker_process_init``) has
#: set up its tracers: Celery's stack protection may have replaced :func:`task_call`.
_WORKER_STARTS = (signals.worker_init, signals.worker_process_init)
#: The ``__call__`` :func:`task_call` stands in for (Celery's own, or its worker's stack
#: protection): what a direct call runs, and what :func:`uninstrument` puts back.
_delegate: list[Callable[..., Any]] = []


def _put_back(**kwargs: Any) -> None:
    """Make :func:`task_call` the base task's ``__call__`` (again)."""
    current = BaseTask.__dict__["__call__"]
    if current is task_call:
        return
    if not _delegate:
        _delegate.append(current)
    BaseTask.__call__ = task_call  # type: ignore[method-assign]


def task_call(task: Any, *args: Any, **kwargs: Any) -> Any:
    """``celery.app.task.Task.__call__`` while instrumented. The tracer's call (the top
    of the task's request stack is the tracer's request, not yet taken: Celery's own
    test in ``_install_stack_protection``) runs the body inside a run; any other call is
    the ``__call__`` it replaced. The exception, if any, propagates unchanged."""
    jobs = _installed
    request = task.request_stack.top
    if jobs is None or request is None or request.called_directly or request._protected:
        return _delegate[0](task, *args, **kwargs)
    request._protected = 1
    run = jobs.begin(task, request)
    if run is None:
        return task.run(*args, **kwargs)
    try:
        result = task.run(*args, **kwargs)
    except Retry as exc:
        jobs.end(run, "retry", exc)
        raise
    except (Ignore, Reject):
        jobs.end(run, "success", None)
        raise
    except BaseException as exc:
        jobs.end(run, "failure", exc)
        raise
    jobs.end(run, "success", None)
    return result


class PublishStamp(NamedTuple):
    """What a task's request says of its wait in the queue, as read on the worker's
    thread: the publish-time header and the ``eta``, unparsed. :meth:`wait_ms` turns it
    into the wait -- on the scheduler's thread when jobs are learnt in the background
    (:class:`pulsegate.jobs.deferred.QueueStamp`)."""

    published: object
    eta: object

    def wait_ms(self, now: float) -> float | None:
        """:math:`\\max(0,\\ now - \\max(t_{published}, t_{eta}))` in ms (None: the
        producer sent no publish time, or the header holds none: not a finite number of
        seconds since :data:`EARLIEST_PUBLISH`)."""
        published = self.published
        if not isinstance(published, (int, float, str)):
            return None
        try:
            sent = float(published)
        except (ValueError, OverflowError):  # OverflowError: an int past float's range
            return None
        # not a time.time() a producer wrote: NaN, infinite, or before 2000 (a forged or
        # garbage header would otherwise learn an infinite or 56-year wait)
        if not EARLIEST_PUBLISH <= sent < math.inf:
            return None
        eta = _epoch(self.eta)
        ready = sent if eta is None or eta < sent else eta
        wait = now - ready
        return wait * 1000.0 if wait > 0.0 else 0.0


def stamp_of(request: Any) -> PublishStamp:
    """The :class:`PublishStamp` of a task's request (the header is an attribute of the
    request, or in its ``headers``). Each value only if it may be a time
    (:func:`_time_like`), else None: a background run keeps its stamp until the drain
    (longer while a drain is stuck: up to MAX_PENDING runs), and whoever publishes
    chose its size."""
    published = getattr(request, HEADER, None)
    if published.__class__ is not float:  # (our producer's is): missing, or not ours
        if published is None:
            headers = getattr(request, "headers", None)
            if isinstance(headers, dict):
                published = headers.get(HEADER)
        published = _time_like(published)
    eta = getattr(request, "eta", None)
    return PublishStamp(published, eta if eta is None else _time_like(eta))


def _time_like(value: object) -> object:
    """``value`` if it may be a time as :meth:`PublishStamp.wait_ms` reads one -- a
    number of at most 64 bits, a datetime, a string of at most :data:`MAX_TIME_CHARS`
    -- else None."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TIME_CHARS else None
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else None
    return value if isinstance(value, (float, datetime)) else None


def queue_wait_ms(request: Any, now: float) -> float | None:
    """The queue wait of a task's request at ``now`` (epoch s): see
    :meth:`PublishStamp.wait_ms`."""
    return stamp_of(request).wait_ms(now)


def _epoch(eta: Any) -> float | None:
    """An ``eta`` as Celery hands it (an ISO 8601 string or a datetime) in epoch s; None
    for anything else (the message's: ``str()`` of a list nested 100 000 deep raises
    RecursionError)."""
    if isinstance(eta, datetime):
        when = eta
    elif isinstance(eta, str):
        try:
            when = datetime.fromisoformat(eta)
        except ValueError:
            return None
    else:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def instrument(app: Any = None, gate: PulseGate | None = None) -> CeleryJobs:
    """Measure every task of this process (producer and worker sides). ``app`` is
    accepted for symmetry with other integrations (Celery's signals and its base task
    class are global);
    ``gate`` as :func:`pulsegate.jobs.get_gate` chooses. Idempotent: a second call
    replaces the first."""
    global _installed
    with _lock:
        if _installed is not None:
            _installed.disconnect()
        _installed = CeleryJobs(gate)
        _installed.connect()
        return _installed


def uninstrument() -> None:
    """Disconnect the receiver :func:`instrument` connected and give the base task its
    ``__call__`` back."""
    global _installed
    with _lock:
        if _installed is not None:
            _installed.disconnect()
            _installed = None


def watch_queues(app: Any, gate: PulseGate | None = None, queues: Any = None,
                 interval: float = 10.0) -> Any:
    """Sample the length and the oldest message of ``app``'s queues on a Redis broker
    (:mod:`pulsegate.jobs.broker`): ``queues`` default to the app's default queue and
    those of ``task_queues``. Any process may watch (a producer sees a stall with no
    worker alive). None when the broker is not Redis.

    Each queue is watched with its priority lists (:func:`priority_lists`): a message
    sent with a priority waits in a list of its own, and a low priority starved by a
    busy high one stalls there while the queue's main list keeps moving."""
    from pulsegate.jobs.broker import CELERY, watch

    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    if queues is None:
        names = [str(app.conf.task_default_queue or "celery")]
        names += [str(getattr(q, "name", q)) for q in (app.conf.task_queues or ())]
        queues = names
    options = dict(app.conf.broker_transport_options or {})
    rows = [row for q in dict.fromkeys(str(q) for q in queues)
            for row in priority_lists(q, options)]
    # every queue's own list before any priority list: past the broker's cap of
    # MAX_QUEUES lists, priority lists are dropped first
    lists = [r for r in rows if not r.optional] + [r for r in rows if r.optional]
    client = redis.Redis.from_url(url)
    return watch(gate if gate is not None else get_gate(), client, lists, CELERY, interval)


def priority_lists(queue: str, options: dict[str, Any]) -> list[Any]:
    """The Redis lists kombu's Redis transport keeps for ``queue``, given the app's
    ``broker_transport_options``: the queue's own list, and one per non-zero
    ``priority_steps`` entry (default ``[0, 3, 6, 9]``) named
    ``<queue><sep><step>`` (``sep`` default ``"\\x06\\x16"``), every key behind
    ``global_keyprefix``. The priority lists are shown as ``"<queue> [priority N]"``
    once they have held a message. (The layout is read from kombu's
    ``kombu/transport/redis.py``, ``Channel._q_for_pri``, BSD licence.)

    >>> [(r.name, r.key) for r in priority_lists("mail", {"priority_steps": [0, 5]})]
    [('mail', 'mail'), ('mail [priority 5]', 'mail\\x06\\x165')]
    """
    from pulsegate.jobs.broker import QueueList

    steps = options.get("priority_steps", (0, 3, 6, 9))
    sep = str(options.get("sep", "\x06\x16"))
    prefix = str(options.get("global_keyprefix", "") or "")
    rows = [QueueList(queue, prefix + queue)]
    for step in steps:
        if step:
            rows.append(QueueList(f"{queue} [priority {step}]", f"{prefix}{queue}{sep}{step}",
                                  optional=True))
    return rows
