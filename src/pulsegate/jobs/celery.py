"""Celery, with one line: ``pulsegate.jobs.celery.instrument(app)`` (in the module that
makes the app, so the producers and the workers both run it).

Through Celery's signals (sentry-python and OpenTelemetry's Celery instrumentation use
the same ones):

* ``before_task_publish`` (producer): the message gets a header
  ``pulsegate_published``, the wall-clock time it was sent (retries are re-published,
  so a retry's wait counts from its own publish);
* ``task_prerun`` (worker): the run begins; its queue wait is
  :math:`\\max(0,\\ t_{start} - \\max(t_{published}, t_{eta}))` -- a task given an
  ``eta`` or a ``countdown`` is not waiting before that time. Without the header (a
  producer that did not run ``instrument``) the wait is unknown, not zero. Producer and
  worker clocks are assumed in step (NTP): a skew shows in the wait;
* ``task_success`` / ``task_failure`` / ``task_retry`` (worker): the run ends as
  ``"success"``, ``"failure"`` (named after the exception) or ``"retry"``. These are sent
  before ``task_postrun``, where OpenTelemetry ends the task's span, so a JOB record
  still finds that span open;
* ``task_postrun``: ends a run no other signal ended (a task that raised ``Ignore`` or
  ``Reject``: ``"success"`` unless its state says ``FAILURE``).

Task names are the registered ones (``app.tasks``' keys): low cardinality by
construction; arguments are never read. Nothing raises into Celery: a fault is counted
by the gate and the task runs as if pulsegate were absent.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from celery import signals

from pulsegate.autoinstrument import instrument_orms
from pulsegate.bounded import BoundedLRU
from pulsegate.jobs import get_gate
from pulsegate.jobs.runs import end, start

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate
    from pulsegate.units import UnitRun

__all__ = ["HEADER", "CeleryJobs", "instrument", "priority_lists", "uninstrument",
           "watch_queues"]

#: The message header carrying the publish time (epoch seconds).
HEADER = "pulsegate_published"
#: Runs in flight kept per process at most (a worker's concurrency is far below it).
MAX_IN_FLIGHT = 10_000

_installed: CeleryJobs | None = None
_lock = threading.Lock()


class CeleryJobs:
    """The signal receivers of one instrumentation; ``gate`` None: :func:`get_gate`
    chooses on the first signal (in a prefork worker: in the child, after the fork)."""

    def __init__(self, gate: PulseGate | None = None) -> None:
        self._gate = gate
        self.runs: BoundedLRU[str, UnitRun] = BoundedLRU(MAX_IN_FLIGHT)
        self.lock = threading.Lock()

    @property
    def gate(self) -> PulseGate:
        gate = self._gate
        if gate is None:
            gate = self._gate = get_gate()
            instrument_orms(gate)  # the worker's SQL, as a web app's middleware would
        return gate

    def connect(self) -> None:
        signals.before_task_publish.connect(self.on_publish, weak=False,
                                            dispatch_uid="pulsegate.publish")
        signals.task_prerun.connect(self.on_prerun, weak=False, dispatch_uid="pulsegate.prerun")
        signals.task_success.connect(self.on_success, weak=False,
                                     dispatch_uid="pulsegate.success")
        signals.task_failure.connect(self.on_failure, weak=False,
                                     dispatch_uid="pulsegate.failure")
        signals.task_retry.connect(self.on_retry, weak=False, dispatch_uid="pulsegate.retry")
        signals.task_postrun.connect(self.on_postrun, weak=False,
                                     dispatch_uid="pulsegate.postrun")

    def disconnect(self) -> None:
        for signal, uid in ((signals.before_task_publish, "pulsegate.publish"),
                            (signals.task_prerun, "pulsegate.prerun"),
                            (signals.task_success, "pulsegate.success"),
                            (signals.task_failure, "pulsegate.failure"),
                            (signals.task_retry, "pulsegate.retry"),
                            (signals.task_postrun, "pulsegate.postrun")):
            signal.disconnect(dispatch_uid=uid)

    # --- producer -----------------------------------------------------------------------

    def on_publish(self, sender: Any = None, headers: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
        if isinstance(headers, dict):
            headers[HEADER] = time.time()

    # --- worker -------------------------------------------------------------------------

    def on_prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                  **kwargs: Any) -> None:
        if task is None or task_id is None:
            return
        try:
            gate = self.gate
            request = task.request
            run = start(gate, task.name, queue_wait_ms=queue_wait_ms(request, time.time()),
                        retries=int(getattr(request, "retries", 0) or 0))
        except Exception as exc:
            self._fault("celery.prerun", exc)
            return
        if run is not None:
            with self.lock:
                self.runs.put(task_id, run)

    def on_success(self, sender: Any = None, **kwargs: Any) -> None:
        self._end(_task_id(sender), "success", None)

    def on_failure(self, sender: Any = None, task_id: str | None = None,
                   exception: BaseException | None = None, **kwargs: Any) -> None:
        self._end(task_id or _task_id(sender), "failure", exception)

    def on_retry(self, sender: Any = None, request: Any = None, reason: Any = None,
                 **kwargs: Any) -> None:
        task_id = getattr(request, "id", None) or _task_id(sender)
        error = reason if isinstance(reason, BaseException) else None
        self._end(task_id, "retry", error)

    def on_postrun(self, sender: Any = None, task_id: str | None = None,
                   state: str | None = None, **kwargs: Any) -> None:
        self._end(task_id, "failure" if state == "FAILURE" else "success", None)

    def _end(self, task_id: str | None, outcome: str, error: BaseException | None) -> None:
        if task_id is None:
            return
        with self.lock:
            run = self.runs.pop(task_id, None)
        if run is None:
            return
        try:
            end(self.gate, run, outcome, error)
        except Exception as exc:
            self._fault("celery.end", exc)

    def _fault(self, where: str, exc: Exception) -> None:
        gate = self._gate
        if gate is not None:
            gate.faults.record(where, exc)


def _task_id(task: Any) -> str | None:
    try:
        return getattr(task.request, "id", None)
    except Exception:
        return None


def queue_wait_ms(request: Any, now: float) -> float | None:
    """:math:`\\max(0,\\ now - \\max(t_{published}, t_{eta}))` in ms, from the task's
    request (None: the producer sent no publish time)."""
    published = getattr(request, HEADER, None)
    if published is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, dict):
            published = headers.get(HEADER)
    if not isinstance(published, (int, float, str)):
        return None
    try:
        sent = float(published)
    except ValueError:
        return None
    if sent != sent:  # NaN
        return None
    eta = _epoch(getattr(request, "eta", None))
    ready = sent if eta is None or eta < sent else eta
    wait = now - ready
    return wait * 1000.0 if wait > 0.0 else 0.0


def _epoch(eta: Any) -> float | None:
    """An ``eta`` as Celery hands it (an ISO 8601 string or a datetime) in epoch s."""
    if eta is None:
        return None
    try:
        when = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def instrument(app: Any = None, gate: PulseGate | None = None) -> CeleryJobs:
    """Measure every task of this process (producer and worker sides). ``app`` is
    accepted for symmetry with other integrations (Celery's signals are global);
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
    """Disconnect the receivers :func:`instrument` connected."""
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
