"""``pulsegate report``'s cache and upstream tables, read from the state a running app
persisted: the ``caches``, ``outbound`` and ``response_cache`` components that
:mod:`pulsegate.caches`, :mod:`pulsegate.outbound` and :mod:`pulsegate.respcache`
register (written with each snapshot)."""

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
    served = _component(store, "response_cache").get("report")
    if isinstance(served, dict):
        served = {**served, "routes": list(served.get("routes") or [])[:limit]}
    return {"cache_patterns": list(caches.get("patterns") or [])[:limit],
            "cacheable_queries": list(caches.get("cacheable_queries") or [])[:limit],
            "upstreams": list(outbound.get("upstreams") or [])[:limit],
            "upstream_causes": list(outbound.get("causes") or [])[:limit],
            "response_cache": served if isinstance(served, dict) else {}}


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
    served = report["response_cache"]
    if served:
        table("response cache (x-ml-optimization-applied: cache)",
              ["hits", "stale hits", "misses", "hit rate", "saved ms", "stored", "discarded",
               "audits", "invalidations", "refused"],
              [(served.get("hits"), served.get("stale_hits"), served.get("misses"),
                served.get("hit_rate"), served.get("saved_ms"), served.get("stored"),
                served.get("discarded"), served.get("audits"),
                sum((served.get("invalidations") or {}).values()),
                sum((served.get("refused") or {}).values()))])
        table("response cache by route (served while confidence > threshold and repeat "
              "share x latency >= the minimum saving)",
              ["endpoint", "serving", "confidence", "repeat share", "app ms", "hits",
               "audits", "saved ms"],
              [(r.get("endpoint"), "yes" if r.get("serving") else "no", r.get("confidence"),
                r.get("repeat_share"), r.get("latency_ms"), r.get("hits"), r.get("audits"),
                r.get("saved_ms")) for r in served.get("routes") or []])
