"""The bounded store of responses in this process: at most ``max_entries`` entries and
``max_bytes`` bytes of bodies, the least recently used evicted first. Thread-safe (one
lock around each change; reads of the map are single C calls).

The store keeps the cache's *generation*: every invalidation bumps it, and a response
is stored only if the generation its capture began in is still the current one (a
response produced while a write was in flight is never stored). The shared store
(:mod:`.redis_store`) has the same four verbs -- ``lookup``, ``put``, ``drop``,
``invalidate`` -- with the generation in Redis."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from pulsegate.bounded import BoundedLRU

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pulsegate.respcache.targets import Target


class Entry:
    """One stored response, and when it stops being fresh and then usable at all."""

    __slots__ = ("body", "content_type", "digest", "endpoint", "fresh_until", "headers",
                 "path", "refreshing", "size", "stale_until", "stored_at")

    def __init__(self, endpoint: str, path: str, content_type: str | None,
                 headers: list[tuple[str, str]], body: bytes, digest: bytes,
                 stored_at: float, fresh_until: float, stale_until: float) -> None:
        self.endpoint = endpoint
        self.path = path
        self.content_type = content_type
        self.headers = headers
        self.body = body
        self.digest = digest
        self.stored_at = stored_at
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        #: When a request set off to refresh it (stale-while-revalidate), else None.
        self.refreshing: float | None = None
        self.size = len(body) + len(path) + sum(len(k) + len(v) for k, v in headers) + 200


class Found(NamedTuple):
    """A look-up's answer: the entry (or None), whether this request took the refresh
    of a stale entry on itself, and the generation at the look-up."""

    entry: Entry | None
    refresh: bool
    generation: int


class MemoryStore:
    #: Entries seen by this process only.
    shared = False

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.entries: BoundedLRU[bytes, Entry] = BoundedLRU(max_entries)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0
        self.generation = 0
        #: The last invalidations, (generation, targets): what learning may compare
        #: across (a body before and after an invalidation that did not name it).
        self.recent: deque[tuple[int, tuple[Target, ...]]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def lookup(self, key: bytes, now: float, stale: float, claim: bool) -> Found:
        """The entry of ``key``; a stale one's refresh is taken by this request when
        ``claim`` and nobody took it less than ``stale`` seconds ago."""
        entry = self.entries.get(key)
        refresh = False
        if claim and entry is not None and entry.fresh_until <= now < entry.stale_until:
            with self._lock:
                busy = entry.refreshing is not None and now - entry.refreshing < stale
                if not busy:
                    entry.refreshing = now
            refresh = not busy
        return Found(entry, refresh, self.generation)

    def put(self, key: bytes, entry: Entry, generation: int) -> bool:
        """Store ``entry`` unless an invalidation came after ``generation``."""
        with self._lock:
            if generation != self.generation:
                return False
            old = self.entries.get(key)
            if old is not None:
                self.bytes -= old.size
            out = self.entries.put(key, entry)
            self.bytes += entry.size
            if out is not None:
                self.bytes -= out[1].size
                self.evicted += 1
            while self.bytes > self.max_bytes and self.entries:
                _, gone = self.entries.popitem(last=False)
                self.bytes -= gone.size
                self.evicted += 1
        return True

    def drop(self, key: bytes, entry: Entry | None = None) -> None:
        """Remove ``key`` (only if it still holds ``entry``, when given)."""
        with self._lock:
            old = self.entries.get(key)
            if old is not None and (entry is None or old is entry):
                del self.entries[key]
                self.bytes -= old.size

    def invalidate(self, targets: Sequence[Target]) -> int:
        """Bump the generation and drop the entries any of ``targets`` names."""
        with self._lock:
            self.generation += 1
            self.recent.append((self.generation, tuple(targets)))
            gone = [k for k, e in self.entries.items()
                    if any(t.matches_entry(e.endpoint, e.path) for t in targets)]
            for k in gone:
                self.bytes -= self.entries.pop(k).size
        return len(gone)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self.entries), "bytes": self.bytes, "evicted": self.evicted}
