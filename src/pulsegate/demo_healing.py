"""The demo's healing action (issue 22 item 5, docs/control.md#healing-actions).

``/slow`` regresses 4x for the last third of the run; once that is an incident, the
healer (on the scheduler thread, once a second) switches on ``degrade`` for ``GET /slow``:
inside its requests :func:`pulsegate.control.healing.degraded` is true and the demo app
serves the cheaper variant (a cached quote instead of the slow computation), answered
with ``x-ml-optimization-applied: degrade``. The report says when it switched on, after
which incident, and what the degraded requests took.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate

#: merged into the demo's configuration
HEALING_CONFIG: dict[str, Any] = {
    "healing_actions": [{"do": "degrade", "on": "GET /slow"}],
    "healing_seconds": 60, "healing_max_per_hour": 4,
}


def switched_on_at(gate: PulseGate, endpoint: str) -> float | None:
    """Wall time the first healing action for ``endpoint`` switched on (None: never)."""
    history = (gate.stats().get("healing") or {}).get("history") or []
    return next((float(h["at"]) for h in history
                 if h["state"] == "on" and h["endpoint"] == endpoint), None)


def healing_lines(gate: PulseGate, latency: Iterable[tuple[float, float]],
                  started: float) -> list[str]:
    """The switches, and ``GET /slow``'s requests served degraded (``latency``: its
    (start wall time, ms) pairs)."""
    stats = gate.stats().get("healing") or {}
    lines = [f"healing: {h['what']} switched {h['state']} at +{h['at'] - started:.1f} s, "
             f"after the incident on {h['incident']} (score {h['score']:.2f})"
             for h in stats.get("history") or []]
    on = switched_on_at(gate, "GET /slow")
    if on is None:
        return lines or ["healing: no action switched on (no incident flagged early enough)"]
    after = [(t, ms) for t, ms in latency if t >= on]
    if after:
        served = sorted(ms for _t, ms in after)
        lines.append(f"  GET /slow served degraded for the last "
                     f"{max(t for t, _ms in after) - on:.1f} s of traffic: {len(served)} "
                     f"requests, p50 {served[len(served) // 2]:.1f} ms "
                     f"(x-ml-optimization-applied: degrade)")
    return lines
