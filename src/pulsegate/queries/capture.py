"""``pulsegate.capture()``: collect SQL statements and query problems outside a web
request -- tests, jobs, scripts, a REPL::

    with capture() as cap:          # or: async with capture() as cap
        run_orm_code()
    cap.queries, cap.query_count, cap.detections

A capture pushes itself as the innermost query sink and forwards every statement to the
sink it replaced, so a capture inside a request still feeds the request. On entry it
instruments the ORMs already imported (SQLAlchemy's ``Engine`` class, Django's
connections) unless ``install_hooks=False``.

The statements of a request served *inside* the block (a test client calling the app)
go to that request, not to the block. With ``watch_requests=True`` the block also
receives the detections of every request that finishes while it is open, in any
thread (``cap.served``: pairs of the request and the detection; see
:mod:`pulsegate.queries.served`). The pytest plugin opens its captures so.
"""

from __future__ import annotations

import contextvars
import sys
from types import TracebackType
from typing import Any

from pulsegate.context import QuerySink, RequestContext, current, query_sink, sink_ended
from pulsegate.queries import eager
from pulsegate.queries import served as served_requests
from pulsegate.queries.events import QueryEvent, hook_faults
from pulsegate.queries.nplusone import Detection, NPlusOneDetector

__all__ = ["Capture", "QueryProblemsError", "capture", "ensure_hooks"]


class QueryProblemsError(AssertionError):
    """Raised by :meth:`Capture.check` when detections or a query budget are exceeded."""


def ensure_hooks() -> None:
    """Instrument every ORM that is imported and not yet instrumented (idempotent)."""
    try:
        if "sqlalchemy" in sys.modules:
            from pulsegate.sqlalchemy import instrument, is_instrumented

            if not is_instrumented():
                instrument()
    except Exception as exc:
        hook_faults.record("capture: instrument sqlalchemy", exc)
    try:
        if "django" in sys.modules:
            from django.apps import apps

            if apps.ready:
                from pulsegate.django.instrument import install

                install()
    except Exception as exc:
        hook_faults.record("capture: instrument django", exc)


class Capture:
    """Collects the statements run in its scope. ``detections`` is computed on exit and
    again whenever more statements arrived since the last analysis."""

    def __init__(self, detector: NPlusOneDetector | None = None, *,
                 max_queries: int = 100_000, install_hooks: bool = True,
                 watch_requests: bool = False, max_served: int = 1000,
                 unused_eager_loads: bool = False, **detector_options: Any) -> None:
        self.detector = detector if detector is not None else NPlusOneDetector(**detector_options)
        self.max_queries = max_queries
        self.install_hooks = install_hooks
        self.watch_requests = watch_requests
        self.max_served = max_served
        #: Report eager loads nothing read (``unused_eager_load``; see queries/eager.py).
        self.unused_eager_loads = unused_eager_loads
        #: ``(request, detection)`` for each detection of a request that finished while
        #: the block was open (``watch_requests=True``); the request is
        #: ``"GET /route (path /p)"``. At most ``max_served``; the rest are counted in
        #: ``served_dropped``.
        self.served: list[tuple[str, Detection]] = []
        self.served_dropped = 0
        #: True while the block receives served requests' detections (False when
        #: ``served.MAX_WATCHERS`` captures already watch).
        self.watching = False
        self.queries: list[QueryEvent] = []
        self.query_count = 0
        self.query_ms = 0.0
        self._outer: QuerySink | None = None
        self.request: RequestContext | None = None
        self._token: contextvars.Token[QuerySink | None] | None = None
        self._detections: list[Detection] = []
        self._analyzed = -1
        #: True once the ``with`` block is left: the hooks skip a capture left behind
        #: in a context it was not exited in.
        self.finished = False
        #: The hooks find each statement's call site for a capture (``Detection.call_site``).
        self.call_sites = True

    # --- the sink ------------------------------------------------------------------------

    def add_query(self, event: QueryEvent) -> None:
        self.query_count += 1
        self.query_ms += event.duration_ms
        if len(self.queries) < self.max_queries:
            self.queries.append(event)
        outer = self._outer
        if outer is not None and not outer.finished:
            outer.add_query(event)

    def add_served(self, request: str, detections: list[Detection]) -> None:
        """The detections of a request that finished while this capture watched."""
        room = self.max_served - len(self.served)
        self.served.extend((request, d) for d in detections[:max(room, 0)])
        self.served_dropped += max(len(detections) - max(room, 0), 0)

    # --- results -------------------------------------------------------------------------

    @property
    def detections(self) -> list[Detection]:
        if self._analyzed != self.query_count:
            self._detections = self.detector.analyze(self.queries)
            if self.unused_eager_loads:
                self._detections += eager.detections(self, self.detector.cache)
            self._analyzed = self.query_count
        return self._detections

    def report(self, detections: list[Detection] | None = None,
               served: list[tuple[str, Detection]] | None = None) -> str:
        """All detections (or the ones given), one block each (call site, redacted SQL,
        count, fix); those of served requests name the request."""
        dets = self.detections if detections is None else detections
        served = self.served if served is None else served
        if not dets and not served:
            return f"{self.query_count} statements, no query problems"
        lines = []
        if dets:
            lines.append(f"{len(dets)} query problem(s) in {self.query_count} statements:")
            lines += ("  " + d.describe() for d in dets)
        if served:
            lines.append(f"{len(served)} query problem(s) in requests served while capturing:")
            lines += (f"  in request {req}: {d.describe()}" for req, d in served)
        return "\n".join(lines)

    def check(self, *, max_queries: int | None = None, nplusone: bool = True) -> None:
        """Raise :class:`QueryProblemsError` on any detection (when ``nplusone``) or when
        more than ``max_queries`` statements ran."""
        problems = []
        if max_queries is not None and self.query_count > max_queries:
            problems.append(f"{self.query_count} SQL statements ran; at most {max_queries} "
                            f"allowed")
        if nplusone and (self.detections or self.served):
            problems.append(self.report())
        if problems:
            raise QueryProblemsError("\n".join(problems))

    # --- context manager -----------------------------------------------------------------

    def __enter__(self) -> Capture:
        if self.install_hooks:
            ensure_hooks()
        self._outer = query_sink.get()
        #: The request this block runs in (``pulsegate.context.current()`` inside it), or None.
        self.request = current()
        self.finished = False
        self._token = query_sink.set(self)
        if self.unused_eager_loads:
            eager.watch()
        if self.watch_requests:
            self.served = []
            self.watching = served_requests.watch(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        self.finished = True
        for release in sink_ended:
            release(self)
        if self.watch_requests:
            served_requests.unwatch(self)
            self.watching = False
        if token is not None:
            try:
                query_sink.reset(token)
            except ValueError:  # exited in another context: just stop collecting there
                query_sink.set(self._outer)
        if self.unused_eager_loads:  # relationships read since the last look count
            self._analyzed = -1
        _ = self.detections
        if eager.watching:
            eager.forget(self)

    async def __aenter__(self) -> Capture:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def capture(detector: NPlusOneDetector | None = None, **options: Any) -> Capture:
    """A :class:`Capture` (sync or async context manager). ``options``: ``max_queries``,
    ``install_hooks``, ``watch_requests``, ``max_served``, ``unused_eager_loads`` and the
    detector's (``min_repeats``, ``repeated_min``, ``write_min``, ``min_duration_ms``,
    ``single_lazy_loads``: nplusone's rule instead of django-zeal's, docs/queries.md)."""
    return Capture(detector, **options)
