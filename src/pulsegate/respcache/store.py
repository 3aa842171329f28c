"""The bounded store of responses: at most ``max_entries`` entries and ``max_bytes``
bytes of bodies, the least recently used evicted first. Thread-safe (one lock around
each change; reads of the map are single C calls)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pulsegate.bounded import BoundedLRU


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


class MemoryStore:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.entries: BoundedLRU[bytes, Entry] = BoundedLRU(max_entries)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Entry | None:
        return self.entries.get(key)

    def put(self, key: bytes, entry: Entry) -> None:
        with self._lock:
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

    def drop(self, key: bytes, entry: Entry | None = None) -> None:
        """Remove ``key`` (only if it still holds ``entry``, when given)."""
        with self._lock:
            old = self.entries.get(key)
            if old is not None and (entry is None or old is entry):
                del self.entries[key]
                self.bytes -= old.size

    def drop_where(self, match: Callable[[Entry], bool]) -> int:
        with self._lock:
            gone = [k for k, e in self.entries.items() if match(e)]
            for k in gone:
                self.bytes -= self.entries.pop(k).size
        return len(gone)
