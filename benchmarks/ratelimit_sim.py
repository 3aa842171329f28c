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

Scores: legitimate requests throttled (%); abusive *excess* blocked (%) -- excess is what
a client sent beyond its entitlement at the nominal rate (rate x active time + burst),
so a perfect static limiter scores 100 % here; abusive requests admitted in total (%),
which is where behaviour matters (the low-and-slow population has no excess at all).
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--redis", default=None, help="Redis URL (default: start redis-server)")
    ap.add_argument("--checks", type=int, default=200_000)
    args = ap.parse_args(argv)
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
    print(f"- >= 95% of abusive excess blocked: {'PASS' if pg['excess_blocked'] >= 95 else 'FAIL'}")
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
