"""Allocator simulation: pulsegate's learned limit against faithful ports of Netflix's
AIMD, Vegas and Gradient2 (per sample and inside ``WindowedLimit``, as Netflix's README
configures servers) and Envoy's gradient controller, side by side in one run.

    .venv/bin/python benchmarks/allocator_sim.py [--seeds 1,2,3] [--phase-seconds 4]

A discrete-event model of one server: 16 workers, FIFO queue inside the server, mean
service 10 ms drawn log-normal (sigma 0.5), exponential or Pareto (shape 2.5: heavy
tail); an end-to-end SLO of 50 ms. Poisson arrivals (20 % high, 50 % normal, 30 % low
priority) step through 0.5x -> 2x -> 3x -> 0.5x capacity; a second scenario keeps 0.8x
of nominal capacity and doubles every service time in the middle phase (a slow
dependency). Every controller sits behind the *same* front door -- pulsegate's bounded
priority queue (max wait 10 ms, class shares, lowest-first shedding) -- whose bounds are
opened to 1-1000 for the peers, so each peer's own bounds apply; only the algorithm that
sets the limit differs. Peers get what their sources' limiters give them: in-flight
counted at acquire, RTT from admission to completion (``benchmarks/limit_peers.py`` has
the ports, their sources and defaults).

Peers are run with their defaults and with the one documented knob a user would set
(AIMD's ``timeout`` = the SLO); the summary shows each peer's *best* configuration by
goodput at 2x/3x, the detail table all of them. pulsegate runs with the hand-set target
it was tuned with (0.4 x SLO) and with the SLO itself (what a user would set); the
sensitivity table sweeps its target from 0.2x to 1x the SLO.

Reported: goodput (completions within the SLO) as % of the phase's realised capacity,
settle time after each step (to the first healthy 0.5 s span; the old "every later
window healthy" beside it, and the share of later spans healthy: see
``allocator_metrics.settle_time``), high-priority requests shed, windows where a high request
was shed while a low one was admitted, mean limit per phase; the bars of issue 23 item 2
are checked on pulsegate with ``target = SLO`` and printed PASS/FAIL.
"""

from __future__ import annotations

import argparse
import heapq
import math
import multiprocessing
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from allocator_metrics import MEAN_SERVICE as MEAN_SERVICE
from allocator_metrics import WINDOW, fmt, overload, summarize
from limit_peers import AIMDLimit, EnvoyGradientController, Gradient2Limit, VegasLimit, WindowedLimit

from pulsegate.control.allocator import ConcurrencyAllocator, Ticket, Waiter
from pulsegate.control.qpolicy import QPolicy

WORKERS = 16
SLO = 0.050
CAPACITY = WORKERS / MEAN_SERVICE  # requests per second
STEP = ((0.5, 1.0), (2.0, 1.0), (3.0, 1.0), (0.5, 1.0))  # (load x capacity, service x)
SLOWDOWN = ((0.8, 1.0), (0.8, 2.0), (0.8, 1.0))
MIX = ((0, 0.2), (1, 0.5), (2, 0.3))  # (priority, share): high, normal, low
DISTS = ("lognormal", "exponential", "pareto")
PARETO_SHAPE = 2.5

Peer = AIMDLimit | VegasLimit | Gradient2Limit | WindowedLimit | EnvoyGradientController


def peer_configs(rng: random.Random) -> list[tuple[str, str, Callable[[], Peer | None]]]:
    """(peer family, configuration label, factory) -- None is the static limit."""
    return [
        ("AIMD", "per sample, defaults", lambda: AIMDLimit()),
        ("AIMD", "per sample, timeout=SLO", lambda: AIMDLimit(timeout=SLO)),
        ("AIMD", "windowed, defaults", lambda: WindowedLimit(AIMDLimit())),
        ("AIMD", "windowed, timeout=SLO", lambda: WindowedLimit(AIMDLimit(timeout=SLO))),
        ("Vegas", "per sample, defaults", lambda: VegasLimit(rng=random.Random(rng.random()))),
        ("Vegas", "windowed, defaults",
         lambda: WindowedLimit(VegasLimit(rng=random.Random(rng.random())))),
        ("Gradient2", "per sample, defaults", lambda: Gradient2Limit()),
        ("Gradient2", "windowed, defaults (Netflix README)", lambda: WindowedLimit(Gradient2Limit())),
        ("Envoy gradient", "defaults, 100 ms / 60 s (docs example)",
         lambda: EnvoyGradientController(rng=random.Random(rng.random()))),
    ]


class Sim:
    def __init__(self, peer: Peer | None, seed: int, phase_seconds: float, dist: str,
                 phases: Sequence[tuple[float, float]] = STEP, target: float | None = None,
                 static: int | None = None, workers: int = WORKERS, auto: bool = False) -> None:
        self.rng = random.Random(seed)  # same seed: identical arrivals and service draws
        self.svc_rng = random.Random(seed * 7919 + 1)
        self.now = 0.0
        self.peer = peer
        self.dist = dist
        self.workers = workers
        self.capacity = workers / MEAN_SERVICE
        self.phases = phases
        self.phase_seconds = phase_seconds
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.busy = 0
        self.server_queue: list[tuple[Ticket, float, int, int]] = []
        self.sq_head = 0
        if target is not None:  # pulsegate, learning
            self.alloc = ConcurrencyAllocator(
                4, 256, 20, target_latency=target, max_queue=2000, max_queue_wait=0.010,
                clock=lambda: self.now, policy=QPolicy(seed=seed), auto_target=auto)
        else:
            initial = static if static is not None else peer.limit if peer is not None else 20
            self.alloc = ConcurrencyAllocator(
                1, 1000, initial, target_latency=SLO, max_queue=2000, max_queue_wait=0.010,
                clock=lambda: self.now, learn=False)
        n_windows = int(len(phases) * phase_seconds / WINDOW) + 1
        self.w_good = [0] * n_windows
        self.w_done = [0] * n_windows
        self.w_shed = [[0, 0, 0] for _ in range(n_windows)]
        self.w_admit = [[0, 0, 0] for _ in range(n_windows)]
        self.w_limit: list[list[int]] = [[] for _ in range(n_windows)]
        self.service_sum = [0.0] * len(phases)  # work drawn per phase: realised capacity
        self.service_n = [0] * len(phases)

    def push(self, t: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def phase(self, t: float) -> int:
        return min(len(self.phases) - 1, int(t / self.phase_seconds))

    def win(self, t: float) -> int:
        return min(len(self.w_good) - 1, int(t / WINDOW))

    def draw(self) -> float:
        p = self.phase(self.now)
        mean = MEAN_SERVICE * self.phases[p][1]
        r = self.svc_rng
        if self.dist == "lognormal":
            d = r.lognormvariate(math.log(mean) - 0.125, 0.5)
        elif self.dist == "exponential":
            d = r.expovariate(1 / mean)
        else:
            d = mean * (PARETO_SHAPE - 1) / PARETO_SHAPE * r.paretovariate(PARETO_SHAPE)
        self.service_sum[p] += d
        self.service_n[p] += 1
        return d

    def start(self, ticket: Ticket, arrived: float, prio: int) -> None:
        inflight = self.alloc.inflight  # counted at acquire, as AbstractLimiter does
        self.w_admit[self.win(self.now)][prio] += 1
        if self.busy < self.workers:
            self.busy += 1
            self.push(self.now + self.draw(), 1, (ticket, arrived, prio, inflight))
        else:
            self.server_queue.append((ticket, arrived, prio, inflight))

    def waiter_cb(self, holder: list[Waiter], arrived: float, prio: int) -> Callable[[], None]:
        def cb() -> None:
            w = holder[0] if holder else None
            if w is not None and w.ticket is not None:
                self.start(w.ticket, arrived, prio)
            else:
                self.w_shed[self.win(self.now)][prio] += 1
        return cb

    def apply_peer_limit(self) -> None:
        if self.peer is not None and self.peer.limit != self.alloc.limit:
            self.alloc.set_limit(self.peer.limit)

    def run(self) -> Sim:
        end = len(self.phases) * self.phase_seconds
        t = 0.0
        while True:  # pre-draw Poisson arrivals phase by phase
            t += self.rng.expovariate(self.phases[self.phase(t)][0] * self.capacity)
            if t >= end:
                break
            r = self.rng.random()
            prio = 0 if r < MIX[0][1] else 1 if r < MIX[0][1] + MIX[1][1] else 2
            self.push(t, 0, prio)
        sample_t = 0.0
        timers = self.peer if isinstance(self.peer, EnvoyGradientController) else None
        while self.events:
            t_next = self.events[0][0]
            if timers is not None and timers.next_timer() <= t_next:
                self.now = timers.next_timer()
                timers.fire(self.now)
                self.apply_peer_limit()
                continue
            self.now, _, kind, payload = heapq.heappop(self.events)
            while sample_t <= self.now:
                self.w_limit[self.win(sample_t)].append(self.alloc.limit)
                sample_t += 0.01
            if kind == 0:
                self.arrive(payload)
            elif kind == 1:
                self.complete(*payload)
            else:
                self.alloc.expire(self.now)
        return self

    def arrive(self, prio: int) -> None:
        holder: list[Waiter] = []
        r = self.alloc.acquire_or_enqueue(prio, self.waiter_cb(holder, self.now, prio))
        if isinstance(r, Ticket):
            self.start(r, self.now, prio)
        elif isinstance(r, Waiter):
            holder.append(r)
            self.push(r.deadline, 2, None)
        else:
            self.w_shed[self.win(self.now)][prio] += 1

    def complete(self, ticket: Ticket, arrived: float, prio: int, inflight: int) -> None:
        w = self.win(self.now)
        self.w_done[w] += 1
        if self.now - arrived <= SLO:
            self.w_good[w] += 1
        rtt = self.now - ticket.start
        self.busy -= 1
        if self.sq_head < len(self.server_queue):
            nxt = self.server_queue[self.sq_head]
            self.sq_head += 1
            self.busy += 1
            self.push(self.now + self.draw(), 1, nxt)
        ticket.release(rtt, True)
        if isinstance(self.peer, EnvoyGradientController):
            self.peer.record(ticket.start, self.now)
        elif self.peer is not None:
            self.peer.on_sample(ticket.start, rtt, inflight, False)
        self.apply_peer_limit()


#: (family, service distribution, workers, phases). The first is in-sample: the hand-set
#: target (0.4 x SLO) and the auto target's multiplier (2 x baseline) were chosen on it;
#: every other family is held out of every tuning choice.
FAMILIES: list[tuple[str, str, int, Sequence[tuple[float, float]]]] = [
    ("lognormal/step", "lognormal", WORKERS, STEP),
    ("lognormal/slowdown", "lognormal", WORKERS, SLOWDOWN),
    ("exponential/step", "exponential", WORKERS, STEP),
    ("exponential/slowdown", "exponential", WORKERS, SLOWDOWN),
    ("pareto/step", "pareto", WORKERS, STEP),
    ("pareto/slowdown", "pareto", WORKERS, SLOWDOWN),
    ("lognormal-4-workers/step", "lognormal", 4, STEP),
    ("lognormal-64-workers/step", "lognormal", 64, STEP),
    # added 2026-12-07 (h23): with 16 workers the slowdown's optimum limit (~20) is the
    # Netflix limits' initial and minimum value, so a peer that barely moves wins there;
    # these two show whether a controller follows the slowdown when it is not.
    ("lognormal-4-workers/slowdown", "lognormal", 4, SLOWDOWN),
    ("lognormal-64-workers/slowdown", "lognormal", 64, SLOWDOWN),
]
IN_SAMPLE = "lognormal/step"
AUTO = "target = SLO, auto target"
#: the item-2 bars are checked on the auto target (configured with the SLO)
AUTO_BARS = True


def run_all(seed: int, phase_seconds: float, families: Sequence[str] = ()) -> dict[str, Any]:
    """Every controller on every family (or on ``families``), one seed."""
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for key, dist, workers, phases in FAMILIES:
        if key.split("/")[0].split("-")[0] not in DISTS or (families and key not in families):
            continue
        rows: dict[tuple[str, str], dict[str, Any]] = {}

        def sim(peer: Peer | None = None, dist: str = dist, workers: int = workers,
                phases: Sequence[tuple[float, float]] = phases, **kw: Any) -> dict[str, Any]:
            return summarize(Sim(peer, seed, phase_seconds, dist, phases, workers=workers, **kw).run())

        for frac in (0.2, 0.4, 0.6, 0.8, 1.0):
            rows[("pulsegate", f"target {frac:g} x SLO")] = sim(target=frac * SLO)
        rows[("pulsegate", "target = SLO, auto target")] = sim(target=SLO, auto=True)
        rows[("static", "64")] = sim(static=64)
        # a constant limit has nothing to settle: its settle figures are the metric's noise
        rows[("static", f"{workers + workers // 4} (1.25 x workers)")] = sim(
            static=workers + workers // 4)
        for fam, label, make in peer_configs(rng):
            rows[(fam, label)] = sim(make())
        results[key] = rows
    return results


def report(all_seeds: dict[int, dict[str, Any]], phase_seconds: float) -> dict[str, bool]:
    seeds = sorted(all_seeds)
    first = all_seeds[seeds[0]]
    bars: dict[str, bool] = {}
    for key in first:
        dist, scen = key.split("/")
        phases = STEP if scen == "step" else SLOWDOWN
        print(f"\n## {dist} service, {scen}, {'IN-SAMPLE' if key == IN_SAMPLE else 'held out'} "
              f"({' -> '.join(f'{ld:g}x' + ('' if s == 1 else f' (service x{s:g})') for ld, s in phases)}"
              f", {phase_seconds:g} s each), seeds {','.join(map(str, seeds))}")
        print("| controller | configuration | goodput % of capacity per phase | settle s per step "
              "| old settle (every later window) | later 0.5 s spans healthy % "
              "| high shed | hi-shed-while-low-admitted | mean limit per phase |")
        print("|---|---|---|---|---|---|---|---|---|")
        best: dict[str, tuple[float, str]] = {}
        for k in first[key]:  # the rows differ by family (the static row names its workers)
            rs = [all_seeds[s][key][k] for s in seeds]
            gp = [statistics.mean(r["goodput"][i] for r in rs) for i in range(len(phases))]
            st = [max(r["settle"][i] for r in rs) for i in range(len(phases) - 1)]
            old = [max(r["every_later"][i] for r in rs) for i in range(len(phases) - 1)]
            steady = [min(r["steady"][i] for r in rs) for i in range(len(phases) - 1)]
            score = statistics.mean(overload(r, scen) for r in rs)
            fam = k[0]
            if fam not in ("pulsegate",) and score > best.get(fam, (-1.0, ""))[0]:
                best[fam] = (score, k[1])
            print(f"| {k[0]} | {k[1]} | {fmt(gp)} | {fmt(st)} | {fmt(old)} | {fmt(steady)} | "
                  f"{sum(r['high_shed'] for r in rs)} | {sum(r['violations'] for r in rs)} | "
                  f"{fmt([statistics.mean(r['limit'][i] for r in rs) for i in range(len(phases))])} |")
        peer_best = max(score for fam, (score, _) in best.items() if fam != "static")
        print("best configuration per peer (mean goodput over the overloaded phases): "
              + "; ".join(f"{fam} {lab}: {sc:.1f} %" for fam, (sc, lab) in best.items()))
        slo_runs = [all_seeds[s][key][("pulsegate", AUTO if AUTO_BARS else "target 1 x SLO")]
                    for s in seeds]
        pg = min(overload(r, scen) for r in slo_runs)
        if scen == "step":
            bars[f"{dist}: target=SLO keeps >= 97 % at 2x and 3x (worst seed {pg:.1f})"] = all(
                min(r["goodput"][1], r["goodput"][2]) >= 97.0 for r in slo_runs)
            bars[f"{dist}: target=SLO within 1 point of the best peer ({pg:.1f} vs {peer_best:.1f})"] = (
                pg >= peer_best - 1.0)
            bars[f"{dist}: settle <= 0.5 s after every step (first healthy 0.5 s span)"] = all(
                max(r["settle"]) <= 0.5 for r in slo_runs)
            bars[f"{dist}: no high shed while low admitted"] = all(
                r["violations"] == 0 for r in slo_runs)
        else:
            bars[f"{dist} slowdown: target=SLO within 1 point of the best peer in the slow "
                 f"phase ({pg:.1f} vs {peer_best:.1f})"] = pg >= peer_best - 1.0
    return bars


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` or ``"4-60"`` (inclusive) or a mix: ``"4-9,11"``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def tuning(seeds: list[int], families: list[str], phase_seconds: float) -> None:
    """pulsegate's auto target alone (configured with the SLO) on many seeds: the run the
    allocator's constants are chosen on. Use seeds other than the ones reported."""
    by_key = {key: (dist, workers, phases) for key, dist, workers, phases in FAMILIES}
    for key in families:
        dist, workers, phases = by_key[key]
        scores = []
        for seed in seeds:
            r = summarize(Sim(None, seed, phase_seconds, dist, phases, target=SLO,
                              workers=workers, auto=True).run())
            scores.append(overload(r, key.split("/")[1]))
            print(f"{key} seed {seed}: goodput {fmt(r['goodput'])}, settle {fmt(r['settle'])}, "
                  f"limit {fmt(r['limit'])}", flush=True)
        print(f"== {key}, seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}): mean "
              f"{statistics.mean(scores):.2f}, worst {min(scores):.1f} % over the overloaded "
              "phases", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3", help='e.g. "1,2,3" or "4-60"')
    ap.add_argument("--phase-seconds", type=float, default=4.0)
    ap.add_argument("--families", default="", help="comma-separated families (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="processes (one per seed)")
    ap.add_argument("--tuning", metavar="FAMILIES", help=(
        "comma-separated families (e.g. lognormal-4-workers/step): pulsegate's auto target "
        "only, mean and worst over the seeds"))
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    families = [f for f in args.families.split(",") if f]
    if args.tuning:
        tuning(seeds, args.tuning.split(","), args.phase_seconds)
        return 0
    print(f"# allocator simulation: {WORKERS} workers (4 and 64 in two families), mean service "
          f"{MEAN_SERVICE * 1000:.0f} ms, SLO {SLO * 1000:.0f} ms, capacity {CAPACITY:.0f} req/s")
    if args.jobs > 1:  # one process per seed: same figures, less waiting
        with multiprocessing.Pool(min(args.jobs, len(seeds))) as pool:
            runs = pool.starmap(run_all, [(s, args.phase_seconds, families) for s in seeds])
        all_seeds = dict(zip(seeds, runs, strict=True))
    else:
        all_seeds = {s: run_all(s, args.phase_seconds, families) for s in seeds}
    bars = report(all_seeds, args.phase_seconds)
    print(f"\n## bars of issue 23 item 2 (pulsegate: {AUTO if AUTO_BARS else 'target = SLO'})")
    for k, v in bars.items():
        print(f"- {'PASS' if v else 'FAIL'}: {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
