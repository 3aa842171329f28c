"""Drive a PulseGate directly with a hand-held clock (no sleeping, exact latencies)."""

from __future__ import annotations

from typing import Any

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord


def make_gate(wall_start: float = 1_800_000_000.0, **options: Any) -> tuple[PulseGate, FakeClock]:
    clk = FakeClock()
    wall = FakeClock(wall_start)
    options.setdefault("measure_cpu", False)
    options.setdefault("measure_memory", False)
    gate = PulseGate(clock=clk, wall=wall, cpu_clock=lambda: 0.0, **options)
    gate.test_wall = wall  # type: ignore[attr-defined]
    return gate, clk


def hit(gate: PulseGate, clk: FakeClock, ms: float, path: str = "/x") -> RequestRecord | None:
    ctx = gate.begin(RequestInfo("GET", path, path))
    assert ctx is not None
    clk.t += ms / 2000.0
    gate.response_headers(ctx, 200)
    clk.t += ms / 2000.0
    gate.test_wall.t += ms / 1000.0  # type: ignore[attr-defined]
    return gate.finish(ctx)


def warm(gate: PulseGate, clk: FakeClock, n: int = 40, ms: float = 10.0, path: str = "/x") -> None:
    for _ in range(n):
        hit(gate, clk, ms, path)
