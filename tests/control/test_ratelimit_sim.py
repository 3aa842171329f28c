"""The rate-limit simulation benchmark: pulsegate must meet its bars and beat the static
bucket on the same request stream (the moving window is compared in the benchmark)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "ratelimit_sim.py"


def test_adaptive_limiter_meets_bars_and_beats_static_limiters() -> None:
    spec = importlib.util.spec_from_file_location("ratelimit_sim", PATH)
    assert spec is not None and spec.loader is not None
    sim = importlib.util.module_from_spec(spec)
    sys.modules["ratelimit_sim"] = sim
    spec.loader.exec_module(sim)
    pg, static = sim.simulate(600.0, 7, moving_window=False)  # the benchmark's default run
    assert pg["excess_blocked"] >= 95.0
    assert pg["legit_throttled"] <= 0.5, pg
    assert static["legit_throttled"] > 3 * pg["legit_throttled"]
    # Behaviour-aware: fewer abusive requests get through, including the ones under the rate.
    assert pg["abusive_admitted"] < static["abusive_admitted"] - 10
    assert pg["by_kind"]["lowslow"] > 10.0 and static["by_kind"]["lowslow"] == 0.0
    assert pg["by_kind"]["steady"] == 0.0
