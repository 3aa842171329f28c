"""Cache efficiency: hits, misses, writes, deletes, evictions and value sizes per cache
and per key *pattern* (ids folded, raw keys never reported), with hit rates, hot keys,
TTL advice and queries worth caching. See docs/caches.md.

One line, after the gate is built::

    pulsegate.caches.instrument(gate)      # Django's caches and every redis-py client

or the setting ``cache_monitoring=True`` (``PULSEGATE = {"cache_monitoring": True}``),
applied when the middleware is built. ``instrument(gate, client)`` instruments one
redis-py client (sync or asyncio) only.

With ``headers="all"`` each response carries ``x-ml-cache-hits`` and
``x-ml-cache-misses``: the cache reads the request made before its response started.
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING, Any

from pulsegate.caches.advice import pattern_rows
from pulsegate.caches.keys import KeyPatterns
from pulsegate.caches.monitor import NO_EXPIRY, UNKNOWN_TTL, CacheMonitor
from pulsegate.io_tally import installed, tally_of

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host

__all__ = ["NO_EXPIRY", "UNKNOWN_TTL", "CacheMonitor", "KeyPatterns", "instrument",
           "monitor_of", "report"]

_MONITORS: weakref.WeakKeyDictionary[Any, CacheMonitor] = weakref.WeakKeyDictionary()


def monitor_of(gate: Host) -> CacheMonitor | None:
    """The gate's cache monitor (None until :func:`instrument`)."""
    return _MONITORS.get(gate)


def attach(gate: Host) -> CacheMonitor:
    """The gate's :class:`CacheMonitor`, made and plugged in on first use: ``stats()``
    section ``caches``, the response headers, queries worth caching."""
    monitor = _MONITORS.get(gate)
    if monitor is not None:
        return monitor
    c = gate.config
    monitor = CacheMonitor(max_patterns=c.io.cache_max_patterns,
                           max_tracked_keys=c.io.cache_tracked_keys,
                           sample=c.io.cache_reuse_sample, faults=gate.faults,
                           key_words=c.io.cache_key_words)
    _MONITORS[gate] = monitor
    gate.scheduler.every(0.5, monitor.drain, "caches.drain")  # the queued GETs
    section = _Section(gate, monitor)
    gate.plugs.add_stats("caches", section)
    gate.plugs.add_state("caches", section)
    if c.core.headers == "all":
        gate.start_listeners.append(cache_headers)
    if c.io.cacheable_queries and c.queries.query_analysis:
        from pulsegate.caches.queries import attach as attach_queries

        monitor.cacheable = attach_queries(gate)
    from pulsegate.export.io import install as install_export

    install_export(gate, caches=monitor)
    gate.plugs.add_report("caches", lambda: report(gate))
    return monitor


class _Section:
    """``gate.stats()["caches"]``, and the report persisted with each snapshot (what
    ``pulsegate report`` prints; counts restart with the process, so nothing is loaded
    back)."""

    def __init__(self, gate: Host, monitor: CacheMonitor) -> None:
        self.gate = gate
        self.monitor = monitor

    def stats(self) -> dict[str, Any]:
        return self.monitor.stats_summary()

    def state(self) -> dict[str, Any]:
        return report(self.gate)

    def load_state(self, data: Any) -> None:
        pass


def cache_headers(ctx: RequestContext, status: int) -> None:
    """Start listener: ``x-ml-cache-hits`` / ``x-ml-cache-misses`` of the request so far
    (added to the headers the response starts with)."""
    tally = tally_of(ctx)
    if tally is None:
        ctx.add_header("x-ml-cache-hits", "0")
        ctx.add_header("x-ml-cache-misses", "0")
    else:
        ctx.add_header("x-ml-cache-hits", str(tally.cache_hits))
        ctx.add_header("x-ml-cache-misses", str(tally.cache_misses))


def instrument(gate: Host, *clients: Any) -> CacheMonitor:
    """Count cache operations for ``gate``: with no ``clients``, every Django cache
    backend (when Django's settings are configured) and every redis-py client; else
    only the redis-py clients given. Returns the gate's monitor. Fails open: a library
    that cannot be instrumented is counted in ``gate.stats()["internal_errors"]``."""
    monitor = attach(gate)
    try:
        if clients:
            from pulsegate.caches.redis import instrument_redis

            for client in clients:
                instrument_redis(monitor, client)
            return monitor
        if installed("redis"):
            from pulsegate.caches.redis import instrument_redis

            instrument_redis(monitor)
        if "django" in sys.modules:
            from pulsegate.caches.django import instrument_configured

            instrument_configured(monitor)
    except Exception as exc:
        gate.faults.record("caches.instrument", exc)
    return monitor


def report(gate: Host, limit: int | None = 50) -> dict[str, Any]:
    """Everything the dashboard and the CLI show: per-pattern rows (hit rate, hot key,
    TTL advice), the per-cache totals and the queries worth caching."""
    monitor = _MONITORS.get(gate)
    if monitor is None:
        return {"patterns": [], "caches": {}, "cacheable_queries": []}
    cacheable = monitor.cacheable.ranked(limit) if monitor.cacheable is not None else []
    return {"patterns": pattern_rows(monitor, limit), "caches": monitor.stats_summary(),
            "cacheable_queries": cacheable}
