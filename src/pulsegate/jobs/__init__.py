"""Background jobs, measured and learnt like endpoints (issue 21).

Any code::

    from pulsegate.jobs import observe_job

    @observe_job("reports.nightly")          # a function or a coroutine function
    def nightly(): ...

    with observe_job("import_feed"):         # or: async with
        ...

Celery (``pulsegate.jobs.celery.instrument(app)``) and RQ (``pulsegate.jobs.rq``'s
workers) add the queue wait from the publish (enqueue) time, the retries and the
outcome of each task with one line.

Per job name, each run's duration, thread CPU, allocated-block delta, SQL (an N+1 is
reported against ``"JOB <name>"`` with its fix) and outcome are learnt by an endpoint
model (``"JOB <name>"``), its queue wait by another (``"QUEUE <name>"``: a backlog that
builds up is an incident of it), and :class:`~pulsegate.jobs.tracker.JobTracker` adds
the start rate: starvation, retries, a backlog estimate. docs/jobs.md has the formulas.

The gate: the one given, else the one set with :func:`set_gate`, else the Django
project's (``pulsegate.django`` installed), else one built from ``PULSEGATE_*``
environment variables on first use.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pulsegate.jobs.runs import end, start, tracker_of

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate
    from pulsegate.jobs.deferred import JobRun
    from pulsegate.records import RequestRecord
    from pulsegate.units import UnitRun

__all__ = ["JobScope", "get_gate", "observe_job", "set_gate", "tracker_of"]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_gate: PulseGate | None = None


def set_gate(gate: PulseGate | None) -> None:
    """The gate job runs report to when none is given (None: choose again)."""
    global _gate
    with _lock:
        _gate = gate


def get_gate() -> PulseGate:
    """The gate set with :func:`set_gate`; else the Django project's when
    ``pulsegate.django`` is installed; else one built from the environment, once."""
    global _gate
    gate = _gate
    if gate is not None:
        return gate
    django_gate = _django_gate()
    if django_gate is not None:
        return django_gate
    with _lock:
        if _gate is None:
            from pulsegate.engine import PulseGate

            _gate = PulseGate.from_env()
        return _gate


def _django_gate() -> PulseGate | None:
    if "django" not in sys.modules:
        return None
    try:
        from django.conf import settings

        if not settings.configured or "pulsegate.django" not in settings.INSTALLED_APPS:
            return None
        from pulsegate.django.gate import get_gate as django_get_gate

        return django_get_gate()
    except Exception:  # an unconfigured or half-set-up project: not ours to fix
        return None


class JobScope:
    """One run of a job as a block (``with`` / ``async with``). ``outcome`` may be set
    inside (``"retry"``); an exception leaving the block makes it a ``"failure"`` named
    after the exception, which propagates. ``run`` and ``record`` are the measured run
    and its record (None when not measured; in the background the run is a
    :class:`~pulsegate.jobs.deferred.JobRun` and the record stays None). One block per object: as a decorator,
    :class:`observe_job` makes a new one per call."""

    __slots__ = ("gate", "name", "outcome", "queue_wait_ms", "record", "retries", "run")

    def __init__(self, name: str, gate: PulseGate | None = None,
                 queue_wait_ms: float | None = None, retries: int = 0) -> None:
        self.name = name
        self.gate = gate
        self.queue_wait_ms = queue_wait_ms
        self.retries = retries
        self.outcome = "success"
        self.run: UnitRun | JobRun | None = None
        self.record: RequestRecord | None = None

    def __enter__(self) -> JobScope:
        try:
            gate = self.gate if self.gate is not None else get_gate()
        except Exception:  # a bad PULSEGATE_* environment: the job runs unmeasured
            return self
        self.gate = gate
        self.run = start(gate, self.name, queue_wait_ms=self.queue_wait_ms,
                         retries=self.retries)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        run, gate = self.run, self.gate
        if run is None or gate is None:
            return
        if exc is not None:
            self.record = end(gate, run, "failure", exc)
        else:
            self.record = end(gate, run, self.outcome)

    async def __aenter__(self) -> JobScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


class observe_job:
    """Measure a job: ``with observe_job(name):``, ``async with observe_job(name):`` or
    ``@observe_job(name)`` on a function or a coroutine function (``name`` defaults to
    the function's ``module.qualname``). ``gate`` as :func:`get_gate` chooses;
    ``queue_wait_ms`` and ``retries`` when the caller knows them."""

    __slots__ = ("gate", "name", "queue_wait_ms", "retries", "scope")

    def __init__(self, name: str | None = None, *, gate: PulseGate | None = None,
                 queue_wait_ms: float | None = None, retries: int = 0) -> None:
        self.name = name
        self.gate = gate
        self.queue_wait_ms = queue_wait_ms
        self.retries = retries
        self.scope: JobScope | None = None

    def _scope(self) -> JobScope:
        if not self.name:
            raise TypeError("observe_job(name) as a block needs the job's name")
        return JobScope(self.name, self.gate, self.queue_wait_ms, self.retries)

    def __call__(self, fn: F) -> F:
        name = self.name or f"{fn.__module__}.{fn.__qualname__}"
        make = functools.partial(JobScope, name, self.gate, self.queue_wait_ms, self.retries)
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with make():
                    return await fn(*args, **kwargs)
            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with make():
                return fn(*args, **kwargs)
        return cast(F, run)

    def __enter__(self) -> JobScope:
        self.scope = scope = self._scope()
        return scope.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        scope = self.scope
        if scope is not None:
            self.scope = None
            scope.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> JobScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)
