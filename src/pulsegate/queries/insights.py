"""Query problems ranked across requests: one bounded LRU entry per (kind, fingerprint).

Each request's detections are folded into their entry: requests affected, statements,
total and mean time, the endpoints seen (first ``max_endpoints_per_entry``), the latest
call site / relationship / fix. ``ranked()`` orders by total time spent -- the
statements a fix would remove -- then by how many requests were hit. Memory is bounded
by ``max_fingerprints`` entries whatever the traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries.nplusone import Detection

__all__ = ["QueryInsights"]


class QueryInsights:
    def __init__(self, max_fingerprints: int = 1000, max_endpoints_per_entry: int = 10) -> None:
        self.max_fingerprints = max(1, max_fingerprints)
        self.max_endpoints = max_endpoints_per_entry
        self._data: BoundedLRU[tuple[str, str], dict[str, Any]] = BoundedLRU(max_fingerprints)
        self._lock = threading.Lock()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def record(self, endpoint: str, detections: Iterable[Detection], now: float) -> None:
        with self._lock:
            for d in detections:
                key = (d.kind, d.fingerprint)
                e = self._data.touch(key)
                if e is None:
                    e = {"kind": d.kind, "fingerprint": d.fingerprint, "sql": d.sql,
                         "requests": 0, "statements": 0, "total_ms": 0.0,
                         "endpoints": [], "first_seen": now, "max_count": 0}
                    if self._data.put(key, e) is not None:
                        self.evictions += 1
                e["requests"] += 1
                e["statements"] += d.count
                e["total_ms"] += d.total_ms
                e["max_count"] = max(e["max_count"], d.count)
                e["last_seen"] = now
                e["call_site"] = d.call_site
                e["relationship"] = d.relationship
                e["suggestion"] = d.suggestion
                e["confidence"] = d.confidence
                if endpoint not in e["endpoints"] and len(e["endpoints"]) < self.max_endpoints:
                    e["endpoints"].append(endpoint)

    def ranked(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries, most total time first; each a fresh dict with ``mean_count`` and
        ``mean_ms`` per affected request."""
        with self._lock:
            rows = [dict(e, endpoints=list(e["endpoints"])) for e in self._data.values()]
        for r in rows:
            r["mean_count"] = r["statements"] / r["requests"]
            r["mean_ms"] = r["total_ms"] / r["requests"]
        rows.sort(key=lambda r: (-r["total_ms"], -r["requests"], r["fingerprint"]))
        return rows[:limit] if limit is not None else rows

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
