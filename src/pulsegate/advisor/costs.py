"""Which statement shapes cost the most database time, across requests.

The request path only hands over a reference: the advisor's listener appends the
finished request's statement list (already built by the SQL hooks) to a bounded deque --
one ``append``, O(1). On the scheduler thread :meth:`StatementCosts.drain` fingerprints
the statements (a cache hit for a statement seen before) and folds them into one entry
per fingerprint: calls, total ms, the endpoints it ran for (first few), the longest raw
``IN`` list (counted on the raw text, in-process: the count leaves, never the list) and
the dialect. When requests arrive faster than the job drains them, the oldest are
dropped and counted (``dropped``): the table is then a sample, the shares still hold.
Memory: ``maxlen`` requests in the inbox, ``max_fingerprints`` entries.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries.fingerprint import FingerprintCache

if TYPE_CHECKING:
    from pulsegate.queries.events import QueryEvent

__all__ = ["StatementCosts", "longest_in_list"]

_IN_OPEN = re.compile(r"\bin\s*\(", re.IGNORECASE)
#: Only the first 64 KiB of a statement are looked at for IN lists.
_SCAN = 65536


def longest_in_list(sql: str) -> int:
    """Items in the longest ``IN (...)`` list of placeholders or literals (0: none): a
    linear walk from each ``IN (`` to its closing parenthesis.

    >>> longest_in_list("select * from t where id in (%s, %s, %s) and k in (select 1)")
    3
    """
    best = 0
    text = sql[:_SCAN]
    for m in _IN_OPEN.finditer(text):
        i = m.end()
        j = text.find(")", i)
        if j < 0:
            j = len(text)
        inner = text[i:j]
        if "(" in inner or inner.lstrip()[:6].lower() == "select":
            continue
        best = max(best, inner.count(",") + 1 if inner.strip() else 0)
    return best


class StatementCosts:
    def __init__(self, max_fingerprints: int = 1000, inbox: int = 1024,
                 cache: FingerprintCache | None = None) -> None:
        self.inbox: deque[tuple[str, Sequence[QueryEvent]]] = deque(maxlen=inbox)
        self.entries: BoundedLRU[int, dict[str, Any]] = BoundedLRU(max_fingerprints)
        self.cache = cache or FingerprintCache(4096)
        self.offered = 0
        self.drained = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def offer(self, endpoint: str, queries: Sequence[QueryEvent] | None) -> None:
        """The request path's part: keep a reference (O(1))."""
        if queries:
            self.offered += 1
            self.inbox.append((endpoint, queries))

    @property
    def dropped(self) -> int:
        return self.offered - self.drained - len(self.inbox)

    def drain(self, now: float) -> int:
        """Fold the waiting requests into the table (the scheduler's part)."""
        n = 0
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        while self.inbox:
            try:
                endpoint, queries = self.inbox.popleft()
            except IndexError:
                break
            n += 1
            for ev in list(queries):
                fp = self.cache.get(ev.sql, ev.db)
                e = self.entries.touch(fp.hash)
                if e is None:
                    e = {"id": fp.id, "sql": fp.text, "verb": fp.verb, "db": ev.db,
                         "calls": 0, "total_ms": 0.0, "endpoints": [], "max_in_list": 0}
                    self.entries.put(fp.hash, e)
                e["calls"] += 1
                e["total_ms"] += ev.duration_ms
                if "in (?)" in fp.text and e["max_in_list"] < 100_000:
                    e["max_in_list"] = max(e["max_in_list"], longest_in_list(ev.sql))
                if endpoint not in e["endpoints"] and len(e["endpoints"]) < 5:
                    e["endpoints"].append(endpoint)
        self.drained += n
        return n

    def minutes(self) -> float:
        """Minutes observed (at least one)."""
        if self.first_at is None or self.last_at is None:
            return 1.0
        return max(1.0, (self.last_at - self.first_at) / 60.0)

    def top(self, limit: int) -> list[dict[str, Any]]:
        """Entries, most total time first."""
        rows = sorted(self.entries.values(), key=lambda e: -float(e["total_ms"]))
        return rows[:limit]
