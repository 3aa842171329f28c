"""What a snapshot writes and how a start-up reads it back (layout of the sections).

Sections (see :mod:`pulsegate.registry.store`):

* ``workers``: ``worker -> {pid, host, started, updated, stats}``, one row per process;
* ``ep:<worker>``: ``endpoint -> {state, own}``: that worker's endpoint models and how
  many requests it observed itself (the merge weight, :mod:`pulsegate.registry.merge`);
* ``insights:<worker>``: ``endpoint|kind|fingerprint -> aggregated query detection``;
* ``components``: ``name -> state()`` of the limiter, allocator, detector, ...
  (last writer wins);
* ``models``: ``name@version -> ModelVersion``; ``predictions``: ``id -> Prediction``;
  ``labels``: ``id -> label``.

These functions are shared by the running gate and the CLI, which reads the same store.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pulsegate.registry.merge import merge_endpoint_states
from pulsegate.registry.store import StateStore


def live_workers(store: StateStore, now: float, ttl: float) -> dict[str, dict[str, Any]]:
    rows = store.read("workers")
    return {w: r for w, r in rows.items()
            if isinstance(r, dict) and now - float(r.get("updated", 0.0)) <= ttl}


def fleet_endpoints(store: StateStore, workers: dict[str, dict[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
    """Every endpoint's state merged across ``workers`` (Chan merge)."""
    grouped: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for w in workers:
        for key, row in store.read(f"ep:{w}").items():
            if isinstance(row, dict) and isinstance(row.get("state"), dict):
                grouped[key].append((row["state"], float(row.get("own", 0.0))))
    out: dict[str, dict[str, Any]] = {}
    for key, rows in grouped.items():
        try:
            out[key] = merge_endpoint_states(rows)
        except (KeyError, TypeError, ValueError, IndexError):
            continue
    return out


def fleet_insights(store: StateStore, workers: dict[str, dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Query detections aggregated per (endpoint, kind, fingerprint) over workers."""
    merged: dict[str, dict[str, Any]] = {}
    for w in workers:
        for key, row in store.read(f"insights:{w}").items():
            if not isinstance(row, dict):
                continue
            cur = merged.get(key)
            if cur is None:
                merged[key] = dict(row)
                continue
            for f in ("requests", "queries", "total_ms"):
                cur[f] = cur.get(f, 0) + row.get(f, 0)
            cur["confidence"] = max(cur.get("confidence", 0.0), row.get("confidence", 0.0))
            cur["first_seen"] = min(cur.get("first_seen", 0.0), row.get("first_seen", 0.0))
            cur["last_seen"] = max(cur.get("last_seen", 0.0), row.get("last_seen", 0.0))
    return list(merged.values())


def roi(insight: dict[str, Any], now: float) -> dict[str, float]:
    r"""Rank a query insight: :math:`ROI = c \cdot g \cdot u`.

    * :math:`c`: the detection's confidence (0-1);
    * :math:`g`: estimated improvement, the share of the group's time a fix removes:
      :math:`(n-1)/n` for a group of :math:`n` statements per request (an N+1 becomes
      one ``IN``/join query, a repeated query runs once, a write loop one bulk write);
    * :math:`u`: urgency = calls per minute × mean time, where calls per minute is how
      often requests hit the problem (requests over the observed span, at least one
      minute) and mean time is the group's mean total ms per request.

    The product is in "ms of database time a fix saves per minute", scaled by
    confidence.
    """
    requests = max(1, int(insight.get("requests", 1)))
    per_request = float(insight.get("queries", requests)) / requests
    improvement = (per_request - 1.0) / per_request if per_request > 1 else 0.0
    span = max(60.0, float(insight.get("last_seen", now)) - float(insight.get("first_seen", now)))
    calls_per_minute = requests * 60.0 / span
    mean_ms = float(insight.get("total_ms", 0.0)) / requests
    urgency = calls_per_minute * mean_ms
    confidence = float(insight.get("confidence", 0.0))
    return {"confidence": confidence, "improvement": improvement,
            "calls_per_minute": calls_per_minute, "mean_ms": mean_ms, "urgency": urgency,
            "roi": confidence * improvement * urgency}


def ranked_insights(insights: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    rows = [{**i, **roi(i, now)} for i in insights]
    rows.sort(key=lambda r: -r["roi"])
    return rows


def sum_stats(workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counters summed over workers (numbers only)."""
    total: dict[str, Any] = {}
    for row in workers.values():
        for k, v in (row.get("stats") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
    return total
