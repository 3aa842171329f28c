"""Allocator simulation: pulsegate's Q-learning limit vs static, AIMD, Vegas, Gradient2
and Envoy's gradient controller, side by side in one run.

    .venv/bin/python benchmarks/allocator_sim.py [--seed 1] [--phase-seconds 4]

A discrete-event model of one server: ``c`` workers, log-normal service times (mean 10
ms, sigma 0.5), FIFO queue inside the server; an end-to-end SLO of 50 ms. Poisson
arrivals (20 % high, 50 % normal, 30 % low priority) step through 0.5x -> 2x -> 3x ->
0.5x capacity. Every controller sits behind the *same* front door -- pulsegate's
bounded priority queue (max wait 10 ms, class shares, lowest-first shedding) -- and only
the algorithm that sets the concurrency limit differs, so the comparison is about the
limit. The baselines are re-implemented from their public descriptions:

* static: a fixed limit (64: a typical guessed "max workers x 4").
* AIMD (Netflix concurrency-limits AIMDLimit): +1 when in-flight >= limit/2 and no
  sample over the timeout (the SLO); x0.9 on a late sample.
* Vegas (Netflix VegasLimit): queue = limit x (1 - rtt_noload/rtt); grow by beta when
  queue <= log10(limit), by log10 when < alpha = 3 log10; shrink by log10 when > beta =
  6 log10; rtt_noload is the minimum, re-probed every ~30 x limit samples.
* Gradient2 (Netflix Gradient2Limit): long RTT = EMA over 600 samples, short = the
  sample; gradient = clamp(long/short, 0.5, 1); new = L x gradient + 4;
  L <- 0.8 L + 0.2 new; long decays x0.9 when long/short > 2; no growth when app-limited.
* Envoy gradient: every 100 ms window, gradient = clamp((minRTT + 25 % buffer) /
  p50(window), 0.5, 2); L <- L x gradient + sqrt(L x gradient); minRTT re-measured every
  5 s (scaled down from Envoy's 60 s for a 16 s run) by pinning the limit to 3 for 50
  requests.

Reported per controller: goodput (completions within the SLO) as % of capacity per
phase, p50/p99 per priority, sheds per priority, windows where a high request was shed
while a low one was admitted, settle time after each step and limit stability.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pulsegate.control.allocator import ConcurrencyAllocator, Ticket, Waiter
from pulsegate.control.qpolicy import QPolicy

WORKERS = 16
MEAN_SERVICE = 0.010
SIGMA = 0.5
SLO = 0.050
TARGET = 0.4 * SLO  # the allocator protects in-service latency; queue wait adds up to 10 ms
CAPACITY = WORKERS / MEAN_SERVICE  # requests per second
LOADS = (0.5, 2.0, 3.0, 0.5)
MIX = ((0, 0.2), (1, 0.5), (2, 0.3))  # (priority, share): high, normal, low
WINDOW = 0.1  # seconds per reporting window
MIN_LIMIT, MAX_LIMIT, INITIAL = 4, 256, 20


# --- the baseline controllers: on_sample(rtt, inflight, late, now) -> limit ----------------


class Static:
    name = "static(64)"

    def __init__(self) -> None:
        self.limit = 64.0

    def on_sample(self, rtt: float, inflight: int, late: bool, now: float) -> float:
        return self.limit


class AIMD:
    name = "AIMD"

    def __init__(self) -> None:
        self.limit = float(INITIAL)

    def on_sample(self, rtt: float, inflight: int, late: bool, now: float) -> float:
        if late:
            self.limit = max(MIN_LIMIT, self.limit * 0.9)
        elif inflight * 2 >= self.limit:
            self.limit = min(MAX_LIMIT, self.limit + 1)
        return self.limit


class Vegas:
    name = "Vegas"

    def __init__(self) -> None:
        self.limit = float(INITIAL)
        self.rtt_noload = math.inf
        self.probe_in = 30 * INITIAL

    def on_sample(self, rtt: float, inflight: int, late: bool, now: float) -> float:
        self.probe_in -= 1
        if self.probe_in <= 0:  # periodic reset so a changed baseline is relearned
            self.rtt_noload = rtt
            self.probe_in = int(30 * self.limit)
            return self.limit
        if rtt < self.rtt_noload:
            self.rtt_noload = rtt
            return self.limit
        if inflight * 2 < self.limit:
            return self.limit
        lim = self.limit
        log = max(1.0, math.log10(lim))
        queue = math.ceil(lim * (1 - self.rtt_noload / rtt))
        if queue <= log:
            lim += 6 * log
        elif queue < 3 * log:
            lim += log
        elif queue > 6 * log:
            lim -= log
        self.limit = min(MAX_LIMIT, max(MIN_LIMIT, lim))
        return self.limit


class Gradient2:
    name = "Gradient2"

    def __init__(self) -> None:
        self.limit = float(INITIAL)
        self.long: float | None = None
        self.n = 0

    def on_sample(self, rtt: float, inflight: int, late: bool, now: float) -> float:
        # ExpAvgMeasurement(600, warmup 10): plain average for the first 10 samples.
        self.n += 1
        if self.long is None:
            self.long = rtt
        elif self.n <= 10:
            self.long += (rtt - self.long) / self.n
        else:
            self.long += (rtt - self.long) * 2 / 601
        if self.long / rtt > 2:
            self.long *= 0.9
        if inflight < self.limit / 2:
            return self.limit
        gradient = max(0.5, min(1.0, self.long / rtt))
        new = self.limit * gradient + 4
        new = self.limit * 0.8 + new * 0.2
        self.limit = max(MIN_LIMIT, min(MAX_LIMIT, new))
        return self.limit


class EnvoyGradient:
    name = "Envoy gradient"

    def __init__(self) -> None:
        self.limit = float(INITIAL)
        self.min_rtt: float | None = None
        self.measuring: list[float] | None = []  # starts with a minRTT measurement
        self.window: list[float] = []
        self.window_end = WINDOW
        self.next_probe = 5.0
        self.saved = float(INITIAL)

    def current(self) -> float:
        return 3.0 if self.measuring is not None else self.limit

    def on_sample(self, rtt: float, inflight: int, late: bool, now: float) -> float:
        if self.measuring is not None:
            self.measuring.append(rtt)
            if len(self.measuring) >= 50:
                self.min_rtt = statistics.median(self.measuring)
                self.measuring = None
                self.limit = self.saved
                self.window, self.window_end = [], now + WINDOW
                self.next_probe = now + 5.0
            return self.current()
        self.window.append(rtt)
        if now >= self.window_end and self.window and self.min_rtt is not None:
            sample = statistics.median(self.window)
            gradient = max(0.5, min(2.0, self.min_rtt * 1.25 / sample))
            lim = self.limit * gradient
            self.limit = max(MIN_LIMIT, min(MAX_LIMIT, lim + math.sqrt(lim)))
            self.window, self.window_end = [], now + WINDOW
        if now >= self.next_probe:
            self.saved = self.limit
            self.measuring = []
        return self.current()


# --- the simulation ----------------------------------------------------------------------


class Sim:
    def __init__(self, controller: Any, seed: int, phase_seconds: float) -> None:
        self.rng = random.Random(seed)  # same seed: identical arrivals and service times
        self.now = 0.0
        self.controller = controller
        self.phase_seconds = phase_seconds
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.busy = 0
        self.server_queue: list[tuple[Ticket, float, int]] = []
        self.sq_head = 0
        if controller is None:  # pulsegate
            self.alloc = ConcurrencyAllocator(
                MIN_LIMIT, MAX_LIMIT, INITIAL, target_latency=TARGET, max_queue=2000,
                max_queue_wait=0.010, clock=lambda: self.now, policy=QPolicy(seed=seed))
        else:
            self.alloc = ConcurrencyAllocator(
                MIN_LIMIT, MAX_LIMIT, INITIAL, target_latency=TARGET, max_queue=2000,
                max_queue_wait=0.010, clock=lambda: self.now, learn=False)
            self.alloc.set_limit(controller.limit if not hasattr(controller, "current")
                                 else controller.current())
        n_windows = int(len(LOADS) * phase_seconds / WINDOW) + 1
        self.w_good = [0] * n_windows
        self.w_done = [0] * n_windows
        self.w_shed = [[0, 0, 0] for _ in range(n_windows)]
        self.w_admit = [[0, 0, 0] for _ in range(n_windows)]
        self.w_offered = [0] * n_windows
        self.w_limit: list[list[int]] = [[] for _ in range(n_windows)]
        self.latencies: list[list[list[float]]] = [[[], [], []] for _ in LOADS]
        self.service_sum = [0.0] * len(LOADS)  # work done per phase, to de-noise capacity
        self.service_n = [0] * len(LOADS)

    def push(self, t: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def phase(self, t: float) -> int:
        return min(len(LOADS) - 1, int(t / self.phase_seconds))

    def win(self, t: float) -> int:
        return min(len(self.w_good) - 1, int(t / WINDOW))

    def service(self) -> float:
        mu = math.log(MEAN_SERVICE) - SIGMA * SIGMA / 2
        return self.rng.lognormvariate(mu, SIGMA)

    def draw(self) -> float:
        d = self.service()
        p = self.phase(self.now)
        self.service_sum[p] += d
        self.service_n[p] += 1
        return d

    def start(self, ticket: Ticket, arrived: float, prio: int) -> None:
        self.w_admit[self.win(self.now)][prio] += 1
        if self.busy < WORKERS:
            self.busy += 1
            self.push(self.now + self.draw(), 1, (ticket, arrived, prio))
        else:
            self.server_queue.append((ticket, arrived, prio))

    def waiter_cb(self, holder: list[Waiter], arrived: float, prio: int) -> Callable[[], None]:
        def cb() -> None:
            w = holder[0] if holder else None
            if w is not None and w.ticket is not None:
                self.start(w.ticket, arrived, prio)
            else:
                self.w_shed[self.win(self.now)][prio] += 1
        return cb

    def run(self) -> Sim:
        end = len(LOADS) * self.phase_seconds
        t = 0.0
        while True:  # pre-draw Poisson arrivals phase by phase
            rate = LOADS[self.phase(t)] * CAPACITY
            t += self.rng.expovariate(rate)
            if t >= end:
                break
            r = self.rng.random()
            prio = 0 if r < MIX[0][1] else 1 if r < MIX[0][1] + MIX[1][1] else 2
            self.push(t, 0, prio)
        sample_t = 0.0
        while self.events:
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
        self.w_offered[self.win(self.now)] += 1
        holder: list[Waiter] = []
        r = self.alloc.acquire_or_enqueue(prio, self.waiter_cb(holder, self.now, prio))
        if isinstance(r, Ticket):
            self.start(r, self.now, prio)
        elif isinstance(r, Waiter):
            holder.append(r)
            self.push(r.deadline, 2, None)
        else:
            self.w_shed[self.win(self.now)][prio] += 1

    def complete(self, ticket: Ticket, arrived: float, prio: int) -> None:
        latency = self.now - arrived
        w = self.win(self.now)
        self.w_done[w] += 1
        if latency <= SLO:
            self.w_good[w] += 1
        self.latencies[self.phase(arrived)][prio].append(latency)
        rtt = self.now - ticket.start
        self.busy -= 1
        if self.sq_head < len(self.server_queue):
            nxt = self.server_queue[self.sq_head]
            self.sq_head += 1
            self.busy += 1
            self.push(self.now + self.draw(), 1, nxt)
        ticket.release(rtt, True)
        c = self.controller
        if c is not None:
            lim = c.on_sample(rtt, self.alloc.inflight, latency > SLO, self.now)
            if int(lim) != self.alloc.limit:
                self.alloc.set_limit(lim)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summarize(sim: Sim, phase_seconds: float) -> dict[str, Any]:
    per_phase = int(phase_seconds / WINDOW)
    out: dict[str, Any] = {"phases": [], "settle": [], "violations": 0}
    for p, load in enumerate(LOADS):
        ws = range(p * per_phase, (p + 1) * per_phase)
        good = sum(sim.w_good[w] for w in ws)
        offered = sum(sim.w_offered[w] for w in ws)
        sheds = [sum(sim.w_shed[w][k] for w in ws) for k in range(3)]
        limits = [x for w in ws[per_phase // 2:] for x in sim.w_limit[w]]
        mean_l = statistics.mean(limits) if limits else float("nan")
        stab = (statistics.pstdev(limits) / mean_l * 100) if limits and mean_l else float("nan")
        # Capacity with this run's own service-time draws (their mean differs from 10 ms
        # by up to ~1 % over a few thousand requests): workers x time / mean service.
        realised = sim.service_sum[p] / max(1, sim.service_n[p]) or MEAN_SERVICE
        capacity = WORKERS * phase_seconds / realised
        out["phases"].append({
            "load": load, "goodput_cap": good / capacity * 100,
            "goodput_offered": good / max(1, offered) * 100, "shed": sheds,
            "p50": [pct(sim.latencies[p][k], 0.5) * 1000 for k in range(3)],
            "p99": [pct(sim.latencies[p][k], 0.99) * 1000 for k in range(3)],
            "limit": mean_l, "limit_cv": stab})
        if p > 0:
            out["settle"].append(settle_time(sim, p, per_phase, load))
    # A window in which a high request was shed while a low one was admitted.
    out["violations"] = sum(1 for w in range(len(sim.w_shed))
                            if sim.w_shed[w][0] > 0 and sim.w_admit[w][2] > 0)
    return out


def settle_time(sim: Sim, p: int, per_phase: int, load: float) -> float:
    """Seconds after the step until every later window (0.1 s) of the phase is healthy:
    at most 1 + 1 % of its completions over the SLO and, under capacity, nothing shed;
    over capacity, goodput >= 90 % of capacity. A controller whose limit stays too low
    after the load drops keeps shedding, and never settles."""
    start = p * per_phase

    def healthy(w: int) -> bool:
        done = sim.w_done[w]
        if done == 0 or done - sim.w_good[w] > 1 + 0.01 * done:  # one straggler is noise
            return False
        if load < 1.0:
            return sum(sim.w_shed[w]) == 0
        return sim.w_good[w] >= 0.90 * CAPACITY * WINDOW

    settled = math.inf
    for i in range(per_phase - 1, -1, -1):
        if not healthy(start + i):
            break
        settled = i * WINDOW
    return settled


def bars(q: dict[str, Any], g2: dict[str, Any]) -> dict[str, bool]:
    """The issue's bars, checked on pulsegate's summary (and Gradient2's for recovery)."""
    return {
        "goodput >= 99% of capacity at 2x and 3x": all(
            ph["goodput_cap"] >= 99.0 for ph in q["phases"] if ph["load"] > 1),
        "high-priority p99 <= SLO in every phase": all(
            ph["p99"][0] <= SLO * 1000 for ph in q["phases"]),
        "no high shed while low admitted": q["violations"] == 0,
        "recovery after the drop faster than Gradient2": q["settle"][-1] < g2["settle"][-1],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phase-seconds", type=float, default=4.0)
    args = ap.parse_args(argv)
    controllers: list[tuple[str, Any]] = [("pulsegate (Q)", None)] + [
        (c.name, c) for c in (Static(), AIMD(), Vegas(), Gradient2(), EnvoyGradient())]
    results = {}
    for name, ctrl in controllers:
        results[name] = summarize(Sim(ctrl, args.seed, args.phase_seconds).run(), args.phase_seconds)
    print(f"# allocator simulation: {WORKERS} workers, service lognormal mean "
          f"{MEAN_SERVICE * 1000:.0f} ms, SLO {SLO * 1000:.0f} ms, capacity {CAPACITY:.0f} req/s, "
          f"phases {' -> '.join(f'{x:g}x' for x in LOADS)} ({args.phase_seconds:g} s each), "
          f"seed {args.seed}")
    print("\n## goodput (completions within SLO) as % of capacity, per phase")
    print(f"| controller | {' | '.join(f'{x:g}x' for x in LOADS)} | hi-shed-while-low-admitted windows |")
    print("|---|" + "---|" * (len(LOADS) + 1))
    for name, r in results.items():
        cells = " | ".join(f"{ph['goodput_cap']:.1f}" for ph in r["phases"])
        print(f"| {name} | {cells} | {r['violations']} |")
    print("\n## latency p50/p99 ms by priority (high, normal, low), sheds (high/normal/low)")
    print("| controller | phase | p50 h/n/l | p99 h/n/l | shed h/n/l | mean limit | limit CV % |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for ph in r["phases"]:
            print(f"| {name} | {ph['load']:g}x | "
                  + "/".join(f"{x:.0f}" for x in ph["p50"]) + " | "
                  + "/".join(f"{x:.0f}" for x in ph["p99"]) + " | "
                  + "/".join(str(x) for x in ph["shed"]) + f" | {ph['limit']:.1f} | "
                  f"{ph['limit_cv']:.0f} |")
    print("\n## settle time after each step, seconds (inf: never within the phase)")
    steps = [f"{LOADS[i - 1]:g}x->{LOADS[i]:g}x" for i in range(1, len(LOADS))]
    print(f"| controller | {' | '.join(steps)} |")
    print("|---|" + "---|" * len(steps))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{s:.1f}" for s in r["settle"]) + " |")
    verdict = bars(results["pulsegate (Q)"], results["Gradient2"])
    print("\n## bars (pulsegate)")
    for k, v in verdict.items():
        print(f"- {k}: {'PASS' if v else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
