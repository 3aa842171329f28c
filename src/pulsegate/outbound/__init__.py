"""Outbound HTTP calls: latency, status, errors and timeouts per upstream host (and
route template), a health score per upstream, incidents when one degrades, the
healthiest of several equivalent upstreams, and a slow upstream named as the cause when
several endpoints regress together. See docs/outbound.md.

One line, after the gate is built::

    pulsegate.outbound.instrument(gate)          # httpx (sync and async) and requests

or the setting ``outbound_monitoring=True``, applied when the middleware is built.
Then::

    url = pulsegate.outbound.pick_upstream(gate, ["https://a.example", "https://b.example"])
    with pulsegate.outbound.route("/v1/users/{id}"):    # name the route template
        client.get(f"{url}/v1/users/{user_id}")
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pulsegate.io_tally import installed, tally_of
from pulsegate.outbound import health_score as hf
from pulsegate.outbound.hooks import current_route
from pulsegate.outbound.monitor import OutboundMonitor
from pulsegate.outbound.urls import upstream_of

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host
    from pulsegate.records import RequestRecord

__all__ = ["OutboundMonitor", "health", "instrument", "monitor_of", "pick_upstream", "report",
           "route", "upstream_of"]

_MONITORS: weakref.WeakKeyDictionary[Any, OutboundMonitor] = weakref.WeakKeyDictionary()


def monitor_of(gate: Host) -> OutboundMonitor | None:
    return _MONITORS.get(gate)


def attach(gate: Host) -> OutboundMonitor:
    """The gate's :class:`OutboundMonitor`, made and plugged in on first use: the
    ``outbound`` stats section, the per-endpoint spend listener, the cause finder."""
    monitor = _MONITORS.get(gate)
    if monitor is not None:
        return monitor
    io = gate.config.io
    monitor = OutboundMonitor(gate, max_upstreams=max(1, gate.config.model.max_endpoints // 5),
                              max_routes=io.outbound_max_routes,
                              halflife=io.outbound_health_halflife, clock=gate.clock)
    _MONITORS[gate] = monitor
    section = _Section(gate, monitor)
    gate.plugs.add_stats("outbound", section)
    gate.plugs.add_state("outbound", section)

    def spend(record: RequestRecord, ctx: RequestContext) -> None:
        tally = tally_of(ctx)
        if tally is not None and tally.upstreams:
            monitor.spent(record.endpoint, tally.upstreams)

    gate.listeners.append(spend)
    from pulsegate.outbound.causes import CauseFinder

    monitor.causes = CauseFinder(gate, monitor)
    gate.scheduler.every(10.0, monitor.causes.run, "outbound.causes")
    gate.scheduler.every(0.5, monitor.drain, "outbound.units")
    from pulsegate.export.io import install as install_export

    install_export(gate, outbound=monitor)
    gate.plugs.add_report("outbound", lambda: report(gate))
    return monitor


class _Section:
    """``gate.stats()["outbound"]``, and the report persisted with each snapshot (what
    ``pulsegate report`` prints; the health and counts restart with the process -- the
    upstream's model is restored with the other models)."""

    def __init__(self, gate: Host, monitor: OutboundMonitor) -> None:
        self.gate = gate
        self.monitor = monitor

    def state(self) -> dict[str, Any]:
        return report(self.gate)

    def load_state(self, data: Any) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        rows = self.monitor.rows()
        return {"upstreams": len(rows),
                "calls": sum(r["calls"] for r in rows),
                "unhealthy": [r["upstream"] for r in rows
                              if r["health"] is not None and r["health"] < 0.5]}


def instrument(gate: Host, *transports: Any, httpx: bool = True,
               requests: bool = True) -> OutboundMonitor:
    """Watch ``gate``'s outbound calls made with httpx and requests (those installed);
    with ``transports`` (httpx transports, given to a client as ``transport=``), only
    the calls through those. Fails open: a library that cannot be instrumented is
    counted in ``gate.stats()["internal_errors"]``."""
    monitor = attach(gate)
    from pulsegate.outbound.hooks import (
        instrument_httpx,
        instrument_requests,
        instrument_transport,
    )

    if transports:
        for transport in transports:
            try:
                instrument_transport(monitor, transport)
            except Exception as exc:
                gate.faults.record("outbound.instrument transport", exc)
        return monitor

    for wanted, name, install in ((httpx, "httpx", instrument_httpx),
                                  (requests, "requests", instrument_requests)):
        if wanted and installed(name):
            try:
                install(monitor)
            except Exception as exc:
                gate.faults.record(f"outbound.instrument {name}", exc)
    return monitor


@contextlib.contextmanager
def route(template: str) -> Iterator[None]:
    """Report the calls made inside the block under this route template (a low
    cardinality name, such as ``"/v1/users/{id}"``) instead of their folded path."""
    token = current_route.set(str(template)[:200])
    try:
        yield
    finally:
        current_route.reset(token)


def health(gate: Host, upstream: str) -> float | None:
    """The health of ``upstream`` (a URL or ``scheme://host[:port]``) in [0, 1]; None
    when it was never called (:mod:`pulsegate.outbound.health_score`)."""
    monitor = _MONITORS.get(gate)
    if monitor is None:
        return None
    return monitor.health(upstream_of(upstream)[0] if "://" in upstream else upstream)


def pick_upstream(gate: Host, candidates: Sequence[str]) -> str:
    """The healthiest of several equivalent upstreams (URLs or ``scheme://host``),
    returned as given: highest health; within 0.05 of the best, the fastest; one never
    called first. Without a monitor, the first candidate."""
    if not candidates:
        raise ValueError("pick_upstream needs at least one candidate")
    monitor = _MONITORS.get(gate)
    if monitor is None:
        return candidates[0]
    now = monitor.clock()
    scored = []
    for c in candidates:
        name = upstream_of(c)[0] if "://" in c else c
        scored.append((c, monitor.health(name, now), monitor.latency_ms(name)))
    return candidates[hf.pick(scored)]


def report(gate: Host) -> dict[str, Any]:
    """Everything the dashboard and the CLI show: per upstream (health, latency,
    failures, routes) and the causes found."""
    monitor = _MONITORS.get(gate)
    if monitor is None:
        return {"upstreams": [], "causes": []}
    causes = monitor.causes.recent() if monitor.causes is not None else []
    return {"upstreams": monitor.rows(), "causes": causes}
