"""What ``allocator_sim.py`` measures on a finished run: goodput per phase, the settle
figures after each step, high-priority shedding and priority inversions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allocator_sim import Sim

MEAN_SERVICE = 0.010  # allocator_sim's mean service time (s)
WINDOW = 0.1  # seconds per reporting window


def summarize(sim: Sim) -> dict[str, Any]:
    per_phase = int(sim.phase_seconds / WINDOW)
    out: dict[str, Any] = {"goodput": [], "limit": [], "settle": [], "every_later": [],
                           "steady": [], "high_shed": 0}
    for p, (load, _) in enumerate(sim.phases):
        ws = range(p * per_phase, (p + 1) * per_phase)
        realised = sim.service_sum[p] / max(1, sim.service_n[p]) or MEAN_SERVICE
        capacity = sim.workers * sim.phase_seconds / realised
        out["goodput"].append(sum(sim.w_good[w] for w in ws) / capacity * 100)
        limits = [x for w in ws[per_phase // 2:] for x in sim.w_limit[w]]
        out["limit"].append(statistics.mean(limits) if limits else float("nan"))
        if p > 0:
            settle, every_later, steady = settle_time(sim, p, per_phase, load * sim.phases[p][1])
            out["settle"].append(settle)
            out["every_later"].append(every_later)
            out["steady"].append(steady)
    out["high_shed"] = sum(s[0] for s in sim.w_shed)
    out["violations"] = sum(1 for w in range(len(sim.w_shed))
                            if sim.w_shed[w][0] > 0 and sim.w_admit[w][2] > 0)
    return out


def settle_time(sim: Sim, p: int, per_phase: int, load: float) -> tuple[float, float, float]:
    """After the step into phase ``p``: (settle, every-later, later spans healthy %).

    A window is healthy when, under capacity, nothing is shed and at most 1 + 5 % of its
    completions are over the SLO (exponential and Pareto service alone put ~1 % over
    it); over capacity, when its goodput (completions within the SLO) is >= 90 % of
    capacity.

    * settle: seconds from the step to the first healthy 0.5 s span (five 0.1 s windows)
      -- how fast the controller answers the step. A controller whose limit stays too low
      after the load drops keeps shedding and never settles (inf).
    * every-later (the metric used until 2026-12-07): seconds until every later 0.1 s
      window, averaged with its neighbours, is healthy. Not sound with heavy tails: one
      unlucky window late in the phase resets it, and a *constant* limit, which has
      nothing to settle, scores up to 3 s or inf on exponential service and 4 workers
      (tuning seeds 11-13; the ``static`` rows print it as the metric's noise floor).
    * later spans healthy %: of the 0.5 s spans from the settle point to the phase's
      end, the share that is healthy -- the steadiness the old metric tried to catch,
      as a share instead of one worst window."""
    start = p * per_phase
    capacity = sim.workers / (MEAN_SERVICE * sim.phases[p][1])

    def healthy(ws: range) -> bool:
        done = sum(sim.w_done[w] for w in ws)
        good = sum(sim.w_good[w] for w in ws)
        if load < 1.0:
            return (done > 0 and done - good <= 1 + 0.05 * done
                    and not any(any(sim.w_shed[w]) for w in ws))
        return good >= 0.90 * capacity * WINDOW * len(ws)

    span = round(0.5 / WINDOW)
    spans = [healthy(range(start + i, start + i + span)) for i in range(per_phase - span + 1)]
    first = next((i for i, ok in enumerate(spans) if ok), None)
    settle = math.inf if first is None else first * WINDOW
    later = 0.0 if first is None else 100.0 * sum(spans[first:]) / len(spans[first:])
    every_later = math.inf
    for i in range(per_phase - 1, -1, -1):
        ws = range(max(start, start + i - 1), min(start + per_phase, start + i + 2))
        if not healthy(ws):
            break
        every_later = i * WINDOW
    return settle, every_later, later


def overload(r: dict[str, Any], scen: str) -> float:
    """The figure a configuration is ranked by: mean goodput over the overloaded phases."""
    g: list[float] = r["goodput"]
    return (g[1] + g[2]) / 2 if scen == "step" else g[1]


def fmt(xs: Sequence[float]) -> str:
    return " / ".join("inf" if math.isinf(x) else f"{x:.1f}" for x in xs)
