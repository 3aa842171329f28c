"""Drive a PulseGate directly with a hand-held clock (no sleeping, exact latencies)."""

from __future__ import annotations

from typing import Any

from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_gate(wall_start: float = 1_800_000_000.0, **options: Any) -> tuple[PulseGate, Clock]:
    clk = Clock()
    wall = Clock(wall_start)
    options.setdefault("measure_cpu", False)
    options.setdefault("measure_memory", False)
    gate = PulseGate(clock=clk, wall=wall, cpu_clock=lambda: 0.0, **options)
    gate.test_wall = wall  # type: ignore[attr-defined]
    return gate, clk


def hit(gate: PulseGate, clk: Clock, ms: float, path: str = "/x") -> RequestRecord | None:
    ctx = gate.begin(RequestInfo("GET", path, path))
    assert ctx is not None
    clk.t += ms / 2000.0
    gate.response_headers(ctx, 200)
    clk.t += ms / 2000.0
    gate.test_wall.t += ms / 1000.0  # type: ignore[attr-defined]
    return gate.finish(ctx)


def warm(gate: PulseGate, clk: Clock, n: int = 40, ms: float = 10.0, path: str = "/x") -> None:
    for _ in range(n):
        hit(gate, clk, ms, path)
