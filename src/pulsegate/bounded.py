"""One bounded map for every capped map in pulsegate: memory is bounded by configuration,
never by traffic (per-endpoint, per-client, per-fingerprint, per-call-site maps).

:class:`BoundedLRU` is an ``OrderedDict`` holding at most ``maxsize`` entries. Writes go
through :meth:`~BoundedLRU.put`, which makes the key the most recent and evicts the least
recent entry past ``maxsize``; :meth:`~BoundedLRU.touch` reads a value and makes it the
most recent. Plain ``get``/``in``/iteration are the dict's own (C, no refresh): a cache
that never refreshes on a hit is a FIFO of insertion order, which is what the small
caches of rendered values (header strings, status lines) want -- their hit costs a dict
look-up and nothing else.

A subclass rather than a wrapper so that reads stay single C calls (atomic under the
GIL: the fingerprint cache's hit path takes no lock because of it). Writes are several
calls: callers shared between threads hold their own lock around ``put``.

    >>> lru = BoundedLRU(2)
    >>> lru.put("a", 1)
    >>> lru.put("b", 2)
    >>> lru.touch("a")          # a hit: "a" is now the most recent
    1
    >>> lru.put("c", 3)         # past maxsize: the least recent ("b") goes
    ('b', 2)
    >>> list(lru.items())
    [('a', 1), ('c', 3)]
    >>> lru.resize(1)           # shrinking evicts the oldest first
    [('a', 1)]
    >>> lru
    BoundedLRU(1, [('c', 3)])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["BoundedLRU", "newest"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


def newest(items: Iterable[T], n: int) -> list[T]:
    """The ``n`` newest of ``items`` (a bounded ``deque`` other threads append to), newest
    first. The deque is copied whole by one C call, in which no bytecode runs and so no
    other thread appends: iterating it (``reversed``, ``islice``) across bytecodes raises
    "deque mutated during iteration" when a request thread appends meanwhile.

    >>> from collections import deque
    >>> newest(deque([1, 2, 3, 4], maxlen=4), 2), newest([1], 0)
    ([4, 3], [])
    """
    copied = tuple(items)
    return list(reversed(copied[-n:])) if n > 0 else []


class BoundedLRU(OrderedDict[K, V]):
    """At most ``maxsize`` (at least 1) entries, the least recently put or touched
    evicted first."""

    __slots__ = ("maxsize",)

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = max(1, int(maxsize))

    def put(self, key: K, value: V) -> tuple[K, V] | None:
        """Set ``key`` as the most recent entry; returns the entry evicted to make room,
        if one was."""
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.maxsize:
            return self.popitem(last=False)
        return None

    def touch(self, key: K) -> V | None:
        """The value of ``key``, now the most recent entry; None when absent."""
        try:
            self.move_to_end(key)
        except KeyError:
            return None
        return self[key]

    def resize(self, maxsize: int) -> list[tuple[K, V]]:
        """Change the cap; returns the entries evicted (oldest first) to meet it."""
        self.maxsize = max(1, int(maxsize))
        evicted = []
        while len(self) > self.maxsize:
            evicted.append(self.popitem(last=False))
        return evicted

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.maxsize}, {list(self.items())!r})"

    def __reduce__(self) -> Any:
        # copy/pickle: OrderedDict's own rebuilds with ``cls()``, which needs maxsize
        return (type(self), (self.maxsize,), None, None, iter(self.items()))
