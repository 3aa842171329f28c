r"""A slow upstream named as the cause when several endpoints regress together.

Every request's wait in each upstream feeds, per (endpoint, upstream), a fast and a
baseline exponential smoothing of the milliseconds per request
(:meth:`OutboundMonitor.spent`: :math:`\alpha_{fast} = 0.2`; the baseline is the mean
of the first requests, then :math:`\alpha_{base} = 0.01`, ten times slower while the
fast level stands above :math:`1.5\,b + 1` ms, so that a regression is still seen as
one when the endpoint's incident is flagged). Every 10 s, off the request path, the endpoint
incidents of the last :data:`WINDOW_S` seconds are examined: for an incident on
endpoint :math:`E` whose window mean rose by :math:`X` ms over its baseline
(``excess_ms``), an upstream :math:`u` *explains* it when the endpoint's wait in
:math:`u` rose by

.. math:: \Delta_{E,u} = f_{E,u} - b_{E,u} \;\ge\; \max(1\ \text{ms},\ 0.5\,X)

(at least half of the rise). When :data:`MIN_ENDPOINTS` or more endpoints' incidents
are explained by the same upstream within the window, that upstream is named as their
cause: a cause record (``upstream``, ``endpoints``, ``explained_ms`` per endpoint,
``health``) is kept, and each of those incidents gains a ``cause`` field
(``"upstream https://api.example.com"``) that the dashboard, the logs and the CLI show.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.outbound.monitor import OutboundMonitor
    from pulsegate.plugins import Host

__all__ = ["MIN_ENDPOINTS", "WINDOW_S", "CauseFinder"]

WINDOW_S = 900.0
MIN_ENDPOINTS = 2
SHARE = 0.5
_UNIT_KINDS = ("JOB ", "QUEUE ", "UPSTREAM ", "CACHE ")


class CauseFinder:
    def __init__(self, gate: Host, monitor: OutboundMonitor, max_causes: int = 100) -> None:
        self.gate = gate
        self.monitor = monitor
        self.found: deque[dict[str, Any]] = deque(maxlen=max_causes)

    def explains(self, endpoint: str, excess_ms: float) -> list[tuple[str, float]]:
        """Upstreams whose rise explains at least half of ``excess_ms`` on ``endpoint``,
        with the rise (ms per request)."""
        out = []
        for (ep, upstream), (fast, base, _n) in list(self.monitor.spend.items()):
            if ep != endpoint:
                continue
            rise = fast - base
            if rise >= max(1.0, SHARE * excess_ms):
                out.append((upstream, rise))
        return out

    def run(self) -> None:
        now = self.gate.wall()
        recent = [d for d in list(self.gate.incidents)
                  if isinstance(d, dict) and now - float(d.get("at") or 0.0) <= WINDOW_S
                  and not str(d.get("endpoint", "")).startswith(_UNIT_KINDS)]
        by_upstream: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for incident in recent:
            excess = float(incident.get("excess_ms") or 0.0)
            for upstream, rise in self.explains(str(incident.get("endpoint")), excess):
                by_upstream.setdefault(upstream, []).append((incident, rise))
        for upstream, hits in by_upstream.items():
            endpoints = sorted({str(i.get("endpoint")) for i, _ in hits})
            if len(endpoints) < MIN_ENDPOINTS:
                continue
            for incident, _ in hits:
                incident["cause"] = f"upstream {upstream}"
            known = next((c for c in self.found if c["upstream"] == upstream
                          and now - c["at"] <= WINDOW_S), None)
            explained = {str(i.get("endpoint")): round(rise, 1) for i, rise in hits}
            h = self.monitor.health(upstream)
            if known is not None:
                known["endpoints"] = sorted(set(known["endpoints"]) | set(endpoints))
                known["explained_ms"].update(explained)
                known["health"] = h
                continue
            self.found.append({"upstream": upstream, "endpoints": endpoints,
                               "explained_ms": explained, "at": now, "health": h})

    def recent(self) -> list[dict[str, Any]]:
        return [dict(c, endpoints=list(c["endpoints"]), explained_ms=dict(c["explained_ms"]))
                for c in list(self.found)]
