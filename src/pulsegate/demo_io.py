"""The demo's caches and upstream (issue 21): ``/pricing/{id}`` reads a price from a
small in-process cache and, on a miss, from a pricing "upstream" over HTTP (httpx, a
route of the same server standing in for another service). The cache reports through
the cache monitor's own verbs -- what any cache without a ready-made hook can do -- and
the httpx call is instrumented by ``pulsegate.outbound``. Imported by the demo only."""

from __future__ import annotations

import time
from typing import Any

import pulsegate.caches
import pulsegate.outbound
from pulsegate.caches.advice import pattern_rows
from pulsegate.engine import PulseGate

__all__ = ["TinyCache", "attach", "print_io"]


class TinyCache:
    """A dict with a time to live per key, counted by ``gate``'s cache monitor as the
    cache ``demo``."""

    def __init__(self, gate: PulseGate, ttl: float) -> None:
        self.monitor = pulsegate.caches.attach(gate)
        self.ttl = ttl
        self.data: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        t0 = time.perf_counter()
        found = self.data.get(key)
        hit = found is not None and found[0] > time.monotonic()
        self.monitor.read("demo", key, hit, None, time.perf_counter() - t0)
        return found[1] if hit and found is not None else None

    def set(self, key: str, value: Any) -> None:
        t0 = time.perf_counter()
        self.data[key] = (time.monotonic() + self.ttl, value)
        self.monitor.write("demo", key, self.ttl, None, time.perf_counter() - t0)


def attach(gate: PulseGate) -> tuple[TinyCache, Any]:
    """The demo's cache (1 s time to live: the demo's traffic reuses a price after
    longer, so the TTL advice asks for more) and an httpx transport instrumented for
    ``gate`` (only the app's calls through it are counted, not the demo's own traffic
    driver in the same process)."""
    import httpx

    transport = httpx.AsyncHTTPTransport()
    pulsegate.outbound.instrument(gate, transport)
    return TinyCache(gate, ttl=1.0), transport


def print_io(gate: PulseGate) -> None:
    """The cache patterns and the upstreams the demo's traffic went through."""
    monitor = pulsegate.caches.monitor_of(gate)
    for row in pattern_rows(monitor)[:3] if monitor is not None else []:
        advice = row["ttl_advice"]
        hit_rate = row["hit_rate"] or 0.0
        print(f"cache {row['cache']} {row['pattern']}: {row['reads']} reads, hit rate "
              f"{hit_rate:.0%}, {row['expired_misses']} misses on expired keys (estimated)"
              + (f"; TTL advice: {advice['problem']}, try {advice['suggested_ttl_s']:.0f} s"
                 if advice else ""))
    for up in pulsegate.outbound.report(gate)["upstreams"]:
        routes = ", ".join(r["route"] for r in up["routes"])
        health = "-" if up["health"] is None else f"{up['health']:.2f}"
        print(f"upstream {up['upstream']} ({routes}): {up['calls']} calls, health "
              f"{health}, {up['failures']} failures, {up['timeouts']} timeouts")
