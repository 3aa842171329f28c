r"""Queries worth caching: the same read, with the same parameters, run by many
requests, on tables that are rarely written.

Each finished request with SQL hands its statements to a bounded queue (one append on
the request path); the gate's scheduler folds them, off the request path, into one
entry per (fingerprint, parameter hash) -- the parameters' hash only, never their
values -- counting the *requests* that ran it (a repeat inside one request is the
N+1 / repeated-query detectors' business, not a cache's), and into one write count per
table written.

For an entry read by :math:`r` requests over the observed span, with mean time
:math:`d` ms, on tables written :math:`w` times since the entry was first seen, a cache
in front of it would have run it once and again after each write, so the expected
saving is

.. math:: S = \max(0,\; r - 1 - w)\cdot d \ \text{ms},

reported with its rate per hour of the span. An entry is listed when
:math:`r \ge` :data:`MIN_REQUESTS` and the tables are *rarely written*:
:math:`w \le` :data:`MAX_WRITE_SHARE` :math:`\cdot r`. Most saving first.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries.fingerprint import FingerprintCache

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host
    from pulsegate.queries.events import QueryEvent
    from pulsegate.records import RequestRecord

__all__ = ["MAX_WRITE_SHARE", "MIN_REQUESTS", "CacheableQueries", "attach", "tables"]

MIN_REQUESTS = 5
MAX_WRITE_SHARE = 0.1
_MAX_PENDING = 2000
_TABLES = re.compile(r"\b(?:from|join|into|update)\s+((?:\"[^\"]+\"|`[^`]+`|[\w$]+)"
                     r"(?:\.(?:\"[^\"]+\"|`[^`]+`|[\w$]+))?)")
_WRITES = frozenset({"insert", "update", "delete", "replace", "upsert", "merge", "truncate"})
_READS = frozenset({"select", "with"})


def tables(text: str) -> tuple[str, ...]:
    """Tables a normalised statement names (``from``, ``join``, ``into``, ``update``).

    >>> tables('select a.x from "app_author" a join app_book b on b.a = a.id where a.id = ?')
    ('app_author', 'app_book')
    """
    out: list[str] = []
    for m in _TABLES.finditer(text):
        name = m.group(1).split(".")[-1].strip('"`')
        if name not in out:
            out.append(name)
    return tuple(out)


class CacheableQueries:
    """The fold described in the module doc; :meth:`offer` is the request path's
    verb, :meth:`drain` the scheduler's."""

    def __init__(self, max_entries: int = 1000, max_tables: int = 1000,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.clock = clock or time.monotonic
        self.pending: deque[tuple[str, list[QueryEvent]]] = deque(maxlen=_MAX_PENDING)
        self.entries: BoundedLRU[tuple[int, int], dict[str, Any]] = BoundedLRU(max_entries)
        self.writes: BoundedLRU[str, int] = BoundedLRU(max_tables)
        self.fingerprints = FingerprintCache(2048)
        self.lock = threading.Lock()

    def offer(self, endpoint: str, queries: list[QueryEvent]) -> None:
        self.pending.append((endpoint, queries))

    def drain(self) -> None:
        now = self.clock()
        with self.lock:
            while self.pending:
                endpoint, queries = self.pending.popleft()
                self._fold(endpoint, queries, now)

    def _fold(self, endpoint: str, queries: list[QueryEvent], now: float) -> None:
        seen: set[tuple[int, int]] = set()
        for q in queries:
            fp = self.fingerprints.get(q.sql, q.db)
            if fp.verb in _WRITES:
                for table in tables(fp.text)[:1]:
                    self.writes.put(table, self.writes.get(table, 0) + 1)
                continue
            if fp.verb not in _READS or (q.params_hash is None and q.params_count):
                continue
            key = (fp.hash, q.params_hash or 0)
            entry = self.entries.get(key)
            if entry is None:
                read = tables(fp.text)
                entry = {"fingerprint": fp.id, "sql": fp.text, "tables": read,
                         "requests": 0, "runs": 0, "total_ms": 0.0, "first_seen": now,
                         "writes_at_start": {t: self.writes.get(t, 0) for t in read},
                         "endpoints": []}
                self.entries.put(key, entry)
            entry["runs"] += 1
            entry["total_ms"] += q.duration_ms
            entry["last_seen"] = now
            if key not in seen:
                seen.add(key)
                entry["requests"] += 1
                if endpoint not in entry["endpoints"] and len(entry["endpoints"]) < 5:
                    entry["endpoints"].append(endpoint)

    def ranked(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries worth caching (module doc), most expected saving first."""
        self.drain()
        rows = []
        with self.lock:
            for e in self.entries.values():
                r = e["requests"]
                if r < MIN_REQUESTS:
                    continue
                w = sum(max(0, self.writes.get(t, 0) - n) for t, n in e["writes_at_start"].items())
                if w > MAX_WRITE_SHARE * r:
                    continue
                mean = e["total_ms"] / e["runs"]
                saving = max(0, r - 1 - w) * mean
                span_h = max(1.0, e.get("last_seen", e["first_seen"]) - e["first_seen"]) / 3600
                rows.append({"fingerprint": e["fingerprint"], "sql": e["sql"],
                             "tables": list(e["tables"]), "requests": r, "runs": e["runs"],
                             "writes": w, "mean_ms": mean, "saving_ms": saving,
                             "saving_ms_per_hour": saving / span_h,
                             "endpoints": list(e["endpoints"])})
        rows.sort(key=lambda row: (-row["saving_ms"], row["fingerprint"]))
        return rows[:limit] if limit is not None else rows


def attach(gate: Host) -> CacheableQueries:
    """Feed ``gate``'s requests with SQL to a :class:`CacheableQueries` (a listener and
    a scheduler job)."""
    fold = CacheableQueries(gate.config.queries.max_fingerprints)

    def listen(record: RequestRecord, ctx: RequestContext) -> None:
        if ctx.queries:
            fold.offer(record.endpoint, ctx.queries)

    gate.listeners.append(listen)
    gate.scheduler.every(5.0, fold.drain, "caches.cacheable_queries")
    return fold
