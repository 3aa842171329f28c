"""Synthetic request streams with injected incidents, for the anomaly benchmarks.

Each scenario yields ``(t, features, label)`` per request: ``features`` is the dict of
raw measurements (duration_ms, cpu_ms, memory_blocks, query_count, repeated_share,
status), ``label`` True inside the injected incident. Scenarios: ``latency_regression``
(×2.5 latency after a deploy), ``memory_leak`` (allocation delta climbing by 2
blocks per request from the onset),
``nplusone`` (a deploy makes one endpoint run 20-40 repeated queries, latency ×1.6),
``error_burst`` (30 % 5xx, fast failures).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

SCENARIOS = ("latency_regression", "memory_leak", "nplusone", "error_burst")


def stream(scenario: str, n: int = 6000, onset: int = 4000, length: int = 1000,
           seed: int = 0, rps: float = 5.0) -> Iterator[tuple[float, dict[str, Any], bool]]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    rng = random.Random(seed)
    for i in range(n):
        t = 1.7e9 + i / rps
        bad = onset <= i < onset + length
        lat = rng.lognormvariate(math.log(40.0), 0.25)
        cpu = lat * rng.uniform(0.3, 0.5)
        mem = int(rng.gauss(200, 40))
        queries, share, status = rng.choice((3, 4, 5)), 0.0, 200 if rng.random() > 0.002 else 500
        if bad and scenario == "latency_regression":
            lat *= 2.5
            cpu *= 2.0
        elif bad and scenario == "memory_leak":
            mem += int(2 * (i - onset))  # gradual: +2 blocks per request
        elif bad and scenario == "nplusone":
            queries = rng.randint(20, 40)
            share = 1.0 - 3.0 / queries
            lat *= 1.6
        elif bad and scenario == "error_burst" and rng.random() < 0.3:
            status, lat, queries = 500, lat * 0.3, 1
        yield t, {"duration_ms": lat, "cpu_ms": cpu, "memory_blocks": mem,
                  "query_count": queries, "repeated_share": share, "status": status}, bad
