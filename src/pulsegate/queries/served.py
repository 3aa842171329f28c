"""Detections of requests served while a test's capture is open.

A request served by the app under test -- through Flask's or Django's test client in
the test's own thread, or through Starlette's ``TestClient``, whose app runs in an
anyio portal thread that does not see the test's ContextVars -- collects its SQL in its
own :class:`~pulsegate.context.RequestContext`, never in the test's ``capture()``. So
a capture opened with ``watch_requests=True`` registers here, process-wide, and every
request that *finishes with detections* while it is open hands them over
(:func:`deliver`, called by the engine's query analysis at the end of the request).

Cost: nothing per SQL statement; per finished request with detections one read of
a module global (an empty tuple outside tests). A request in any thread counts while a
watching capture is open -- a test's parallel clients, a live server in the same
process -- and none once it is closed.

Bounded: at most :data:`MAX_WATCHERS` captures watch at once (a further one watches
nothing and says so in ``Capture.served_dropped``), and each keeps at most
``Capture.max_served`` detections.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from pulsegate.queries.events import hook_faults

if TYPE_CHECKING:
    from pulsegate.queries.nplusone import Detection

__all__ = ["MAX_WATCHERS", "Watcher", "deliver", "unwatch", "watch", "watchers"]


class Watcher(Protocol):
    """What watches served requests (:class:`~pulsegate.queries.capture.Capture`)."""

    def add_served(self, request: str, detections: list[Detection]) -> None: ...


#: Most captures watching served requests at once (nested fixtures, pytester's child
#: sessions in the same process); more is a leak, not a use.
MAX_WATCHERS = 16

#: The open watching captures. Replaced, never mutated, so :func:`deliver` reads it
#: without the lock.
watchers: tuple[Watcher, ...] = ()
_lock = threading.Lock()


def watch(cap: Watcher) -> bool:
    """Start handing ``cap`` the detections of finished requests. False when
    :data:`MAX_WATCHERS` captures already watch."""
    global watchers
    with _lock:
        if cap in watchers:
            return True
        if len(watchers) >= MAX_WATCHERS:
            return False
        watchers = (*watchers, cap)
        return True


def unwatch(cap: Watcher) -> None:
    """Stop handing ``cap`` anything (idempotent)."""
    global watchers
    with _lock:
        watchers = tuple(w for w in watchers if w is not cap)


def deliver(endpoint: str, path: str, detections: list[Detection]) -> None:
    """Give the detections of a finished request (``endpoint`` as ``"GET /route"``, its
    ``path``) to every watching capture."""
    try:
        label = f"{endpoint} (path {path[:200]})"
        for cap in watchers:
            cap.add_served(label, detections)
    except Exception as exc:  # never into the request being finished
        hook_faults.record("served: deliver", exc)
