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

from pulsegate.queries.ranking import insight_figures, rank
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


def roi(insight: dict[str, Any], now: float) -> dict[str, float | None]:
    r"""Rank a query insight: :math:`ROI = c \cdot g \cdot u` -- confidence, improvement
    :math:`(n-1)/n`, urgency = calls per minute × mean ms (the formula and the expected
    saving :math:`g \cdot u`: :func:`pulsegate.queries.ranking.insight_figures`)."""
    return insight_figures(insight, now)


def ranked_insights(insights: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The insights with their figures, in the order of the ranked findings
    (:func:`pulsegate.queries.ranking.rank`)."""
    return rank({**i, **roi(i, now)} for i in insights)


def sum_stats(workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counters summed over workers (numbers only)."""
    total: dict[str, Any] = {}
    for row in workers.values():
        for k, v in (row.get("stats") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
    return total
