"""Capacity advice against the allocator simulation's true optimum.

    .venv/bin/python benchmarks/capacity_advice.py [--seeds 1,2,3] [--seconds 20]

For each service distribution of ``benchmarks/allocator_sim.py`` (log-normal, exponential,
Pareto; mean 10 ms) and each arrival rate, the *true optimum* is the smallest number of
workers for which the simulated server (its discrete-event ``Sim``, one phase, no
admission limit: a FIFO queue inside the server) finishes at least 99 % of requests
within the simulation's SLO (50 ms), found by trying worker counts upwards. The advice
(:func:`pulsegate.advisor.capacity.advise`) is computed the way a gate computes it:
from the arrival rate and the mean and variance of the *log* service times (what an
endpoint model learns), read as a log-normal. Reported: the advice, the optimum, the
error in workers, and the share within the SLO the simulation gives at the advised
count.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import allocator_sim as sim_mod

from pulsegate.advisor.capacity import advise, service_mixture

QUANTILE = 0.99
RATES = (400.0, 1200.0, 2400.0, 4800.0)


def within_slo(dist: str, workers: int, rate: float, seed: int, seconds: float) -> float:
    load = rate * sim_mod.MEAN_SERVICE / workers
    s = sim_mod.Sim(None, seed, seconds, dist, phases=((load, 1.0),), static=100_000,
                    workers=workers).run()
    done = sum(s.w_done)
    return sum(s.w_good) / done if done else 0.0


def log_moments(dist: str, seed: int, n: int = 20_000) -> tuple[float, float]:
    """Mean and variance of log-ms service times, drawn as the simulation draws them."""
    s = sim_mod.Sim(None, seed, 1.0, dist, phases=((0.1, 1.0),), static=100_000)
    logs = [math.log(s.draw() * 1000.0) for _ in range(n)]
    return statistics.fmean(logs), statistics.pvariance(logs)


def optimum(dist: str, rate: float, seed: int, seconds: float) -> tuple[int, dict[int, float]]:
    seen: dict[int, float] = {}
    c = max(1, math.floor(rate * sim_mod.MEAN_SERVICE) + 1)
    while True:
        seen[c] = within_slo(dist, c, rate, seed, seconds)
        if seen[c] >= QUANTILE:
            return c, seen
        c += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    families = ("gamma", "lognormal")
    print(f"{'dist':12} {'seed':>4} {'rps':>6} {'optimum':>8}"
          + "".join(f" {f + ' advised':>17} {'in SLO':>7}" for f in families))
    errors: dict[str, list[int]] = {f: [] for f in families}
    met = dict.fromkeys(families, 0)
    unreachable = dict.fromkeys(families, 0)
    cases = 0
    for seed in seeds:
        for dist in sim_mod.DISTS:
            level, var = log_moments(dist, seed)
            for rate in RATES:
                cases += 1
                best, seen = optimum(dist, rate, seed, args.seconds)
                line = f"{dist:12} {seed:>4} {rate:>6.0f} {best:>8}"
                for family in families:
                    mean_s, cv2 = service_mixture([(1.0, level, var)], family)
                    c = advise(rate, mean_s, cv2, sim_mod.SLO, QUANTILE, family=family).workers
                    if c is None:
                        unreachable[family] += 1
                        line += f" {'none':>17} {'-':>7}"
                        continue
                    share = seen.get(c)
                    if share is None:
                        share = within_slo(dist, c, rate, seed, args.seconds)
                    errors[family].append(c - best)
                    met[family] += share >= QUANTILE
                    line += f" {c:>10} ({c - best:+3d}) {share:>7.2%}"
                print(line)
    print()
    for family in families:
        e = errors[family]
        if not e:
            print(f"{family}: no advice in {cases} cases")
            continue
        print(f"{family} reading: {cases} cases, {unreachable[family]} 'unreachable'; of the "
              f"{len(e)} advised: exact {sum(x == 0 for x in e)}, within one worker "
              f"{sum(abs(x) <= 1 for x in e)}, mean error {statistics.fmean(e):+.2f}, "
              f"max |error| {max(abs(x) for x in e)}; the advised count meets 99 % within "
              f"the SLO in {met[family]}/{len(e)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
