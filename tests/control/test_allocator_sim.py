"""The allocator simulation benchmark: pulsegate must meet its bars (standard phases)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "allocator_sim.py"


def load_sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("allocator_sim", PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["allocator_sim"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_pulsegate_meets_the_allocator_bars() -> None:
    sim = load_sim()
    q = sim.summarize(sim.Sim(None, 5, 4.0).run(), 4.0)
    g2 = sim.summarize(sim.Sim(sim.Gradient2(), 5, 4.0).run(), 4.0)
    verdict = sim.bars(q, g2)
    assert all(verdict.values()), (verdict, q)
    static = sim.summarize(sim.Sim(sim.Static(), 5, 4.0).run(), 4.0)
    # Same arrivals, same queue: only the limit differs, and the learned one wins.
    for p in (1, 2):
        assert q["phases"][p]["goodput_cap"] > static["phases"][p]["goodput_cap"] + 3
        assert q["phases"][p]["goodput_cap"] > g2["phases"][p]["goodput_cap"] + 3
