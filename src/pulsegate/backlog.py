"""Work a hot thread hands to the gate's scheduler thread, none of it dropped.

The calling thread (a cache call, a job's end) only appends; the scheduler drains the
backlog every half second, oldest first, so the work is done in the order it happened.
At ``limit`` items the calling thread drains it itself: memory stays bounded and
nothing is lost (a queue that may drop under load keeps its own ``deque(maxlen=...)``).

>>> seen = []
>>> work = Backlog(seen.append, on_fault=print, limit=2)
>>> work.put(1); work.put(2); work.put(3)  # the third put drains the first two
>>> seen, len(work)
([1, 2], 1)
>>> work.drain(), seen
(1, [1, 2, 3])
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Backlog"]

T = TypeVar("T")


class Backlog(Generic[T]):
    """Items for ``handle``, done by :meth:`drain`; a fault in ``handle`` goes to
    ``on_fault`` and the drain goes on with the next item."""

    __slots__ = ("_lock", "handle", "items", "limit", "on_fault")

    def __init__(self, handle: Callable[[T], object], on_fault: Callable[[Exception], object],
                 limit: int = 4096) -> None:
        self.handle = handle
        self.on_fault = on_fault
        self.limit = limit
        self.items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def put(self, item: T) -> None:
        if len(self.items) >= self.limit:
            self.drain()
        self.items.append(item)

    def drain(self) -> int:
        """Handle what is queued, oldest first; returns how many items."""
        items = self.items
        done = 0
        with self._lock:
            while items:
                try:
                    item = items.popleft()
                except IndexError:  # another thread took the last one
                    break
                try:
                    self.handle(item)
                except Exception as exc:  # never into the scheduler or the caller
                    self.on_fault(exc)
                done += 1
        return done
