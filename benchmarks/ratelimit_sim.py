"""Rate-limit simulation: pulsegate's adaptive limiter vs a static token bucket and the
``limits`` package's moving window, at the same nominal rate, plus decision throughput.

    .venv/bin/python benchmarks/ratelimit_sim.py [--seconds 600] [--seed 1] [--redis URL]

Populations (simulated clock; every limiter sees the identical request stream):

* steady legitimate users: Poisson, ~0.3 req/s, browse 20 pages, 2 % 404s, one UA;
* bursty legitimate users: page loads of 10-100 requests (log-normal sizes) within a
  second or two, then 20-120 s of reading; a few loads exceed the nominal burst;
* scrapers: 3 req/s like clockwork, walking /products/{id}, one UA;
* credential stuffers: 2 req/s POST /login, 401s, rotating user agents and parameters;
* low-and-slow stuffers: 0.8 req/s -- *under* the nominal rate -- regular, 401s,
  rotating parameters.

Abusers ignore 429s and keep sending. Nominal policy: 60/minute, burst 60.

Scores: legitimate requests throttled (%); abusive requests admitted (%), per request.
(The "abusive excess blocked" column counts only what a client sent beyond its
entitlement at the nominal rate, so any limiter at that rate scores 100 % -- printed for
continuity, never a bar.)

``--mixes`` runs the closed-loop evaluation of issue 23 instead: eight mixes of clients
that react to refusals (``ratelimit_clients.py``) against pulsegate and against static
limiters swept over 30-240/minute (token bucket; ``limits``' fixed window -- slowapi's
default --, moving window and sliding-window counter); pulsegate passes a mix only when
no static configuration is at least as good on both scores.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.records import RequestRecord

RATE, WINDOW, BURST = 60, 60.0, 60
LEGIT = ("steady", "bursty")


class SimTime:
    """Stands in for the ``time`` module inside ``limits.storage.memory``."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def time(self) -> float:
        return self.t

    def __call__(self) -> float:
        return self.t

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def population(rng: random.Random, seconds: float) -> list[tuple[float, str, str, str, str, str, int]]:
    """(t, kind, client, method, path, ua, status) for every request, time-ordered."""
    out: list[tuple[float, str, str, str, str, str, int]] = []

    def add(t: float, kind: str, client: str, method: str, path: str, ua: str, status: int) -> None:
        if t < seconds:
            out.append((t, kind, client, method, path, ua, status))

    for i in range(200):
        t, ua = rng.uniform(0, 30), f"Mozilla/5.0 steady{i}"
        while t < seconds:
            page = rng.randrange(20)
            add(t, "steady", f"s{i}", "GET", f"/page/{page}", ua, 404 if rng.random() < 0.02 else 200)
            t += rng.expovariate(0.3)
    for i in range(100):
        t, ua = rng.uniform(0, 60), f"Mozilla/5.0 bursty{i}"
        while t < seconds:
            size = min(150, max(10, int(rng.lognormvariate(math.log(25), 0.6))))
            for k in range(size):
                add(t + rng.uniform(0, 1.5), "bursty", f"b{i}", "GET", f"/api/w/{k % 12}", ua, 200)
            t += rng.uniform(20, 120)
    for i in range(10):
        t = rng.uniform(0, 10)
        n = 0
        while t < seconds:
            n += 1
            add(t, "scraper", f"x{i}", "GET", f"/products/{n}", "python-requests/2.31", 200)
            t += 1 / 3 + rng.uniform(-0.01, 0.01)
    for i in range(10):
        t = rng.uniform(0, 10)
        n = 0
        while t < seconds:
            n += 1
            add(t, "stuffer", f"c{i}", "POST", f"/login?user=u{n}", f"UA-{rng.randrange(50)}",
                200 if rng.random() < 0.01 else 401)
            t += rng.expovariate(2.0)
    for i in range(10):
        t = rng.uniform(0, 10)
        n = 0
        while t < seconds:
            n += 1
            add(t, "lowslow", f"l{i}", "POST", f"/login?user=v{n}", "Mozilla/5.0",
                200 if rng.random() < 0.01 else 401)
            t += 1.25 + rng.uniform(-0.02, 0.02)
    out.sort()
    return out


def run(name: str, requests: list[tuple[float, str, str, str, str, str, int]], clock: SimTime,
        check: Callable[[str], bool], observe: Callable[..., object] | None) -> dict[str, Any]:
    sent: dict[str, int] = {}
    blocked: dict[str, int] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for t, kind, client, method, path, ua, status in requests:
        clock.t = 1_000_000.0 + t
        ok = check(client)
        sent[client] = sent.get(client, 0) + 1
        kinds[client] = kind
        first.setdefault(client, t)
        last[client] = t
        if not ok:
            blocked[client] = blocked.get(client, 0) + 1
        if observe is not None:
            route, _, query = path.partition("?")
            rec = RequestRecord(method, route.rsplit("/", 1)[0] + "/{x}", route,
                                status if ok else 429, t, 1.0, 1.0, 0.0, 0)
            observe(client, rec, ua, query)
    legit_sent = sum(n for c, n in sent.items() if kinds[c] in LEGIT)
    legit_blocked = sum(blocked.get(c, 0) for c in sent if kinds[c] in LEGIT)
    excess = blocked_excess = abusive = abusive_blocked = 0
    by_kind: dict[str, list[int]] = {}
    for c, n in sent.items():
        k = kinds[c]
        row = by_kind.setdefault(k, [0, 0])
        row[0] += n
        row[1] += blocked.get(c, 0)
        if k in LEGIT:
            continue
        entitled = RATE / WINDOW * (last[c] - first[c]) + BURST
        e = max(0, n - int(entitled))
        excess += e
        blocked_excess += min(e, blocked.get(c, 0))
        abusive += n
        abusive_blocked += blocked.get(c, 0)
    return {"name": name, "legit_throttled": legit_blocked / max(1, legit_sent) * 100,
            "excess_blocked": blocked_excess / max(1, excess) * 100,
            "abusive_admitted": (abusive - abusive_blocked) / max(1, abusive) * 100,
            "by_kind": {k: v[1] / max(1, v[0]) * 100 for k, v in by_kind.items()}}


def throughput(fn: Callable[[str], Any], n: int) -> float:
    keys = [f"ip:10.0.{i // 256}.{i % 256}" for i in range(1000)]
    t0 = time.perf_counter()
    for i in range(n):
        fn(keys[i % 1000])
    return n / (time.perf_counter() - t0)


def redis_url_or_start(url: str | None) -> tuple[str | None, Any]:
    if url:
        return url, None
    binary = shutil.which("redis-server")
    if binary is None:
        return None, None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tempfile.mkdtemp()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


def simulate(seconds: float, seed: int, moving_window: bool = True) -> list[dict[str, Any]]:
    import limits
    import limits.storage.memory as limits_memory

    requests = population(random.Random(seed), seconds)
    results = []
    clock = SimTime()
    pg = AdaptiveRateLimiter(f"{RATE}/minute", BURST, clock=clock)
    results.append(run("pulsegate adaptive", requests, clock, lambda c: pg.check(c).allowed,
                       pg.observe))
    static = AdaptiveRateLimiter(f"{RATE}/minute", BURST, clock=clock, adaptive=False)
    results.append(run("static token bucket", requests, clock,
                       lambda c: static.check(c).allowed, None))
    real_time = limits_memory.time  # type: ignore[attr-defined]
    limits_memory.time = clock  # type: ignore[attr-defined,assignment]
    try:
        if moving_window:
            mw = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
            item = limits.parse(f"{RATE}/minute")
            results.append(run("limits moving window", requests, clock,
                               lambda c: mw.hit(item, c), None))
    finally:
        limits_memory.time = real_time  # type: ignore[attr-defined]
    for r in results:
        r["requests"] = len(requests)
    return results


SWEEP = (30, 45, 60, 90, 120, 180, 240)  # static rates per minute, each with burst = rate
STRATEGIES = ("token bucket", "limits fixed window (slowapi default)", "limits moving window",
              "limits sliding window counter")


def static_decider(strategy: str, rate: int, clock: SimTime) -> Callable[[str], bool]:
    """A static limiter at ``rate``/minute: pulsegate's GCRA with adaptation off (burst =
    rate), or one of ``limits``' strategies on its memory storage (slowapi keys
    ``limits`` by remote address, fixed window by default)."""
    import limits

    if strategy == "token bucket":
        b = AdaptiveRateLimiter(f"{rate}/minute", rate, clock=clock, adaptive=False)
        return lambda c: b.check(c).allowed
    strategies = limits.strategies
    lim: limits.strategies.RateLimiter
    if strategy.startswith("limits fixed window"):
        lim = strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    elif strategy == "limits moving window":
        lim = strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    else:
        lim = strategies.SlidingWindowCounterRateLimiter(limits.storage.MemoryStorage())
    item = limits.parse(f"{rate}/minute")
    return lambda c: lim.hit(item, c)


def evaluate_mix(mix: str, seed: int, seconds: float,
                 sweep: tuple[int, ...] = SWEEP) -> dict[str, Any]:
    """pulsegate (60/minute, burst 60, adaptive) and every static strategy at every
    swept rate on one mix of closed-loop clients: (legit refused %, abusive admitted %)."""
    import limits.storage.memory as limits_memory
    from ratelimit_clients import run_mix, scores

    clock = SimTime()
    pg = AdaptiveRateLimiter(f"{RATE}/minute", BURST, clock=clock)

    def pg_decide(t: float, key: str, method: str, path: str, ua: str, status: int) -> bool:
        clock.t = 1_000_000.0 + t
        ok = pg.check(key).allowed
        route, _, query = path.partition("?")
        pg.observe(key, RequestRecord(method, route.rsplit("/", 1)[0] + "/{x}", route,
                                      status if ok else 429, t, 1.0, 1.0, 0.0, 0), ua, query)
        return ok

    pg_counts = run_mix(mix, seed, seconds, pg_decide)
    out: dict[str, Any] = {"pulsegate": scores(pg_counts), "kinds": pg_counts, "static": {}}
    real_time = limits_memory.time  # type: ignore[attr-defined]
    limits_memory.time = clock  # type: ignore[attr-defined,assignment]
    try:
        for strategy in STRATEGIES:
            for rate in sweep:
                check = static_decider(strategy, rate, clock)

                def decide(t: float, key: str, *_: object, check: Callable[[str], bool] = check) -> bool:
                    clock.t = 1_000_000.0 + t
                    return check(key)

                out["static"][(strategy, rate)] = scores(run_mix(mix, seed, seconds, decide))
    finally:
        limits_memory.time = real_time  # type: ignore[attr-defined]
    return out


def dominated_by(result: dict[str, Any]) -> list[tuple[str, int]]:
    """Static configurations at least as good as pulsegate on both axes and better on one
    (pulsegate lies *above* the trade-off curve there)."""
    lp, ap = result["pulsegate"]
    return [k for k, (ls, as_) in result["static"].items()
            if ls <= lp and as_ <= ap and (ls < lp or as_ < ap)]


def print_mixes(seeds: list[int], seconds: float) -> dict[str, bool]:
    from ratelimit_clients import MIXES, iter_kinds

    bars: dict[str, bool] = {}
    for mix in MIXES:
        runs = [evaluate_mix(mix, s, seconds) for s in seeds]
        print(f"\n## mix: {mix} ({seconds:g} s, seeds {','.join(map(str, seeds))}): "
              "legitimate refused % / abusive admitted %, per request")
        lp = sum(r["pulsegate"][0] for r in runs) / len(runs)
        ap = sum(r["pulsegate"][1] for r in runs) / len(runs)
        print(f"pulsegate adaptive ({RATE}/minute, burst {BURST}): **{lp:.1f} / {ap:.1f}**; by kind "
              "(% refused, seed " + str(seeds[0]) + "): "
              + ", ".join(f"{k} {v:.1f}" for k, v in iter_kinds(runs[0]["kinds"])))
        print("| static strategy | " + " | ".join(f"{r}/min" for r in SWEEP) + " |")
        print("|---|" + "---|" * len(SWEEP))
        for strategy in STRATEGIES:
            cells = []
            for rate in SWEEP:
                ls = sum(r["static"][(strategy, rate)][0] for r in runs) / len(runs)
                as_ = sum(r["static"][(strategy, rate)][1] for r in runs) / len(runs)
                cells.append(f"{ls:.1f} / {as_:.1f}")
            print(f"| {strategy} | " + " | ".join(cells) + " |")
        beaten = sorted({k for r in runs for k in dominated_by(r)}, key=lambda k: (k[1], k[0]))
        note = (f" ({len(beaten)} static configurations are, e.g. {beaten[0][0]} {beaten[0][1]}/min)"
                if beaten else "")
        bars[f"{mix}: no static rate better on both axes{note}"] = not beaten
    return bars


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--redis", default=None, help="Redis URL (default: start redis-server)")
    ap.add_argument("--checks", type=int, default=200_000)
    ap.add_argument("--mixes", action="store_true",
                    help="only the closed-loop mixes against the static sweep (issue 23)")
    ap.add_argument("--seeds", default="1,2,3", help="seeds for --mixes")
    args = ap.parse_args(argv)
    if args.mixes:
        bars = print_mixes([int(x) for x in args.seeds.split(",")], args.seconds)
        print("\n## bars: pulsegate below every static trade-off curve")
        for k, v in bars.items():
            print(f"- {'PASS' if v else 'FAIL'}: {k}")
        return 0
    results = simulate(args.seconds, args.seed)
    print(f"# rate-limit simulation: {results[0]['requests']} requests over {args.seconds:g} s, "
          f"nominal {RATE}/minute burst {BURST}, seed {args.seed}")
    print("\n| limiter | legit throttled % | abusive excess blocked % | abusive admitted % |"
          " steady % | bursty % | scraper % | stuffer % | low-and-slow % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        k = r["by_kind"]
        print(f"| {r['name']} | {r['legit_throttled']:.2f} | {r['excess_blocked']:.1f} | "
              f"{r['abusive_admitted']:.1f} | {k['steady']:.2f} | {k['bursty']:.2f} | "
              f"{k['scraper']:.1f} | {k['stuffer']:.1f} | {k['lowslow']:.1f} |")
    print("(per-population columns: % of that population's requests refused)")
    pg = results[0]
    print("\n## bars (pulsegate)")
    print(f"- <= 0.5% of legitimate requests throttled: "
          f"{'PASS' if pg['legit_throttled'] <= 0.5 else 'FAIL'}")

    print("\n## decision throughput (one core, 1000 keys)")
    mem = AdaptiveRateLimiter("1000000/second")
    import limits

    mw = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.parse("1000000/second")
    fixed = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    print("| limiter | checks/s |")
    print("|---|---|")
    print(f"| pulsegate check, memory | {throughput(mem.check, args.checks):,.0f} |")
    quarter = args.checks // 4
    print(f"| limits moving window, memory | {throughput(lambda k: mw.hit(item, k), quarter):,.0f} |")
    print(f"| limits fixed window, memory | {throughput(lambda k: fixed.hit(item, k), quarter):,.0f} |")
    url, proc = redis_url_or_start(args.redis)
    try:
        if url is None:
            print("| pulsegate check, Redis | (no redis-server found; pass --redis URL) |")
        else:
            from pulsegate.control.storage import RedisStorage

            st = RedisStorage(url, prefix="bench:")
            rl = AdaptiveRateLimiter("1000000/second", storage=st)
            rate = throughput(rl.check, 20_000)
            assert st.fallbacks == 0
            print(f"| pulsegate check, Redis (one EVALSHA round trip, loopback) | {rate:,.0f} |")
            lstore = limits.storage.storage_from_string(url)
            lmw = limits.strategies.MovingWindowRateLimiter(lstore)
            print(f"| limits moving window, Redis | {throughput(lambda k: lmw.hit(item, k), 20_000):,.0f} |")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
