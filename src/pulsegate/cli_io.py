"""``pulsegate report``'s cache and upstream tables, read from the state a running app
persisted: the ``caches`` and ``outbound`` components that :mod:`pulsegate.caches` and
:mod:`pulsegate.outbound` register (written with each snapshot)."""

from __future__ import annotations

from typing import Any

from pulsegate.cli_output import table

__all__ = ["io_report", "print_io"]


def _component(store: Any, name: str) -> dict[str, Any]:
    try:
        row = store.read("components").get(name)
    except Exception:
        return {}
    state = row.get("state") if isinstance(row, dict) else None
    return state if isinstance(state, dict) else {}


def io_report(store: Any, limit: int) -> dict[str, Any]:
    """``{"caches": ..., "upstreams": ..., "causes": ..., "cacheable_queries": ...}`` as
    the app last persisted them (empty lists when it watches no cache or upstream)."""
    caches = _component(store, "caches")
    outbound = _component(store, "outbound")
    return {"cache_patterns": list(caches.get("patterns") or [])[:limit],
            "cacheable_queries": list(caches.get("cacheable_queries") or [])[:limit],
            "upstreams": list(outbound.get("upstreams") or [])[:limit],
            "upstream_causes": list(outbound.get("causes") or [])[:limit]}


def _ttl(advice: Any) -> str:
    if not isinstance(advice, dict):
        return "-"
    return f"{advice.get('problem')}: {advice.get('suggested_ttl_s')} s"


def print_io(report: dict[str, Any]) -> None:
    """The tables, only those with rows (an app without caches or upstreams prints
    nothing more)."""
    if report["cache_patterns"]:
        table("caches by key pattern (raw keys are never stored)",
              ["cache", "pattern", "reads", "hit rate", "evicted", "expired", "mean ms",
               "hot key", "TTL advice"],
              [(r.get("cache"), r.get("pattern"), r.get("reads"), r.get("hit_rate"),
                r.get("evicted_misses"), r.get("expired_misses"), r.get("mean_ms"),
                r.get("hot_key_share") if r.get("hot_key") else "-", _ttl(r.get("ttl_advice")))
               for r in report["cache_patterns"]])
    if report["cacheable_queries"]:
        table("queries worth caching (same read, same parameters, across requests)",
              ["requests", "writes", "mean ms", "saving ms", "tables", "sql"],
              [(r.get("requests"), r.get("writes"), r.get("mean_ms"), r.get("saving_ms"),
                ", ".join(r.get("tables") or []), r.get("sql")) for r in report["cacheable_queries"]])
    if report["upstreams"]:
        table("upstreams (outbound HTTP calls)",
              ["upstream", "calls", "health", "latency ms", "failures", "errors", "timeouts"],
              [(r.get("upstream"), r.get("calls"), r.get("health"), r.get("latency_ms"),
                r.get("failures"), r.get("errors"), r.get("timeouts"))
               for r in report["upstreams"]])
    if report["upstream_causes"]:
        table("slow upstreams named as the cause of endpoint incidents",
              ["upstream", "endpoints", "explained ms per request"],
              [(c.get("upstream"), ", ".join(c.get("endpoints") or []), c.get("explained_ms"))
               for c in report["upstream_causes"]])
