"""Attack probes' timing: how a function's CPU time grows with its input's size.

``assert_linear(run, make)`` times ``run(make(n))`` at n = 1 000, 10 000 and 100 000
(thread CPU time, the best of three, the garbage collector off) and fails when a
tenfold input costs more than ``bound`` times as much (linear: ~10x; quadratic:
~100x), plus ``slack`` seconds for timer noise at the small sizes. Ratios between
sizes, not absolute times: a shared, loaded machine slows every size alike.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

SIZES = (1_000, 10_000, 100_000)


def cpu_seconds(run: Callable[[Any], object], arg: Any, repeat: int = 3) -> float:
    """The least thread CPU time of ``repeat`` calls of ``run(arg)``."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            t = time.thread_time()
            run(arg)
            best = min(best, time.thread_time() - t)
    finally:
        gc.enable()
    return best


def assert_linear(run: Callable[[Any], object], make: Callable[[int], Any],
                  bound: float = 30.0, slack: float = 0.005) -> list[float]:
    """The times at :data:`SIZES`; fails if a step up costs over ``bound`` x the step
    below (+ ``slack`` s)."""
    times = [cpu_seconds(run, make(n)) for n in SIZES]
    for i in range(1, len(SIZES)):
        t0, t1 = times[i - 1], times[i]
        assert t1 < bound * t0 + slack, (
            f"{SIZES[i - 1]} -> {SIZES[i]}: {t0:.4f} s -> {t1:.4f} s (x{t1 / max(t0, 1e-9):.0f})")
    return times
