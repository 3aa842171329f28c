"""Closed-loop client models for the rate-limit evaluation (``ratelimit_sim.py --mixes``).

Each client is a generator: it yields its next request ``(t, method, path, ua, status)``
and is sent back whether that request was allowed, so an adaptive client can react to
refusals. Legitimate kinds: ``steady``, ``bursty``, ``pageload``, ``nat``; every other
kind is abusive. Scenarios are ours (issue 23's list), no data from elsewhere.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Generator, Iterator

Request = tuple[float, str, str, str, int]  # t, method, path, user agent, status
Behaviour = Generator[Request, bool, None]
LEGIT = frozenset({"steady", "bursty", "pageload", "nat"})
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def steady(rng: random.Random, ua: str) -> Behaviour:
    """A reader: Poisson 0.3 req/s over 20 pages, 2 % 404s."""
    t = rng.uniform(0, 30)
    while True:
        yield t, "GET", f"/page/{rng.randrange(20)}", ua, 404 if rng.random() < 0.02 else 200
        t += rng.expovariate(0.3)


def page_loads(rng: random.Random, ua: str, median: float, cap: int, spread: tuple[float, float],
               read: tuple[float, float], path: Callable[[int], str]) -> Behaviour:
    """Loads of log-normal size (``median``, sigma 0.6, 10..``cap``) within ``spread``
    seconds, then ``read`` seconds of quiet."""
    t = rng.uniform(0, 60)
    n = 0
    while True:
        size = min(cap, max(10, int(rng.lognormvariate(math.log(median), 0.6))))
        span = rng.uniform(*spread)
        for off in sorted(rng.uniform(0, span) for _ in range(size)):
            n += 1
            yield t + off, "GET", path(n), ua, 200
        t += span + rng.uniform(*read)


def bursty(rng: random.Random, ua: str) -> Behaviour:
    """The original bursty user: loads of ~25 (10-150) in 1.5 s, 20-120 s reading."""
    return page_loads(rng, ua, 25, 150, (1.5, 1.5), (20, 120), lambda n: f"/api/w/{n % 12}")


def pageload(rng: random.Random, ua: str) -> Behaviour:
    """A page-heavy app: loads of ~40 (up to 300) requests in 1-2 s, 10-60 s reading."""
    return page_loads(rng, ua, 40, 300, (1.0, 2.0), (10, 60), lambda n: f"/asset/{n % 40}")


def clockwork(rng: random.Random, ua: str, rate: float, method: str, path: str,
              ok: float) -> Behaviour:
    t, n = rng.uniform(0, 10), 0
    while True:
        n += 1
        yield t, method, path.format(n=n), ua, 200 if rng.random() < ok else 401
        t += 1 / rate + rng.uniform(-0.01, 0.01)


def poisson(rng: random.Random, ua: str, rate: float, method: str, path: str,
            ok: float) -> Behaviour:
    t, n = rng.uniform(0, 10), 0
    while True:
        n += 1
        yield t, method, path.format(n=n), ua, 200 if rng.random() < ok else 401
        t += rng.expovariate(rate)


def browser_pageload_scraper(rng: random.Random, ua: str) -> Behaviour:
    """A scraper with a browser UA timed like page loads: 40 product pages in 1.5 s,
    then 5-15 s."""
    return page_loads(rng, ua, 40, 80, (1.5, 1.5), (5, 15), lambda n: f"/products/{n}")


def trust_then_ramp(rng: random.Random, ua: str) -> Behaviour:
    """Browses like a steady user for 3 minutes, ramps to 1.9 req/s over a minute, then
    scrapes at 1.9 req/s."""
    t = rng.uniform(0, 10)
    start, n = t, 0
    while True:
        age = t - start
        if age < 180:
            yield t, "GET", f"/page/{rng.randrange(20)}", ua, 200
            t += rng.expovariate(0.3)
            continue
        n += 1
        yield t, "GET", f"/products/{n}", ua, 200
        rate = 0.3 + 1.6 * min(1.0, (age - 180) / 60)
        t += rng.expovariate(rate)


def quiet_ramp(rng: random.Random, ua: str) -> Behaviour:
    """As :func:`trust_then_ramp`, but it keeps reading the same 20 pages while it ramps
    to 1.9 req/s: only its rate changes (no new paths, no errors), so only a rate-change
    rule can take its trust away."""
    t = rng.uniform(0, 10)
    start = t
    while True:
        age = t - start
        yield t, "GET", f"/page/{rng.randrange(20)}", ua, 200
        rate = 0.3 + 1.6 * min(1.0, max(0.0, age - 180) / 60)
        t += rng.expovariate(rate)


def aimd_attacker(rng: random.Random, ua: str) -> Behaviour:
    """Adapts to the limiter: +0.02 req/s per admitted request, halves its rate and waits
    one interval on a refusal (finds and rides the limit, as a careful bot would)."""
    t, rate, n = rng.uniform(0, 10), 0.5, 0
    while True:
        n += 1
        allowed = yield t, "POST", f"/login?user=w{n}", ua, 200 if rng.random() < 0.01 else 401
        if allowed:
            rate = min(20.0, rate + 0.02)
        else:
            rate = max(0.05, rate / 2)
            t += 1 / rate
        t += 1 / rate


def distributed_stuffer(rng: random.Random, ua: str) -> Behaviour:
    """One of many keys of a credential-stuffing botnet: one login every 20-40 s."""
    t, n = rng.uniform(0, 40), 0
    while True:
        n += 1
        yield t, "POST", f"/login?user=d{n}", ua, 200 if rng.random() < 0.01 else 401
        t += rng.uniform(20, 40)


def nat_users(rng: random.Random, users: int) -> Behaviour:
    """``users`` steady readers behind one address (an office or carrier NAT)."""
    gens = [steady(random.Random(rng.random()), f"{BROWSER} u{i}") for i in range(users)]
    heads: list[tuple[float, int, Request]] = []
    for i, g in enumerate(gens):
        r = next(g)
        heads.append((r[0], i, r))
    heapq.heapify(heads)
    while True:
        _, i, r = heapq.heappop(heads)
        allowed = yield r
        nr = gens[i].send(allowed)
        heapq.heappush(heads, (nr[0], i, nr))


Spawn = tuple[str, int, Callable[[random.Random, int], Behaviour]]

#: mix name -> (kind, how many clients, factory(rng, index))
MIXES: dict[str, list[Spawn]] = {}


def _base() -> list[Spawn]:
    return [("steady", 150, lambda r, i: steady(r, f"Mozilla/5.0 steady{i}")),
            ("bursty", 60, lambda r, i: bursty(r, f"Mozilla/5.0 bursty{i}"))]


MIXES["original"] = [
    *_base(),
    ("scraper", 10, lambda r, i: clockwork(r, "python-requests/2.31", 3.0, "GET", "/products/{n}", 1)),
    ("stuffer", 10, lambda r, i: poisson(r, f"UA-{r.randrange(50)}", 2.0, "POST",
                                         "/login?user=u{n}", 0.01)),
    ("lowslow", 10, lambda r, i: clockwork(r, "Mozilla/5.0", 0.8, "POST", "/login?user=v{n}", 0.01)),
]
MIXES["page loads"] = [
    *_base(),
    ("pageload", 60, lambda r, i: pageload(r, f"{BROWSER} p{i}")),
    ("scraper", 10, lambda r, i: clockwork(r, "python-requests/2.31", 3.0, "GET", "/products/{n}", 1)),
]
MIXES["browser scrapers"] = [
    *_base(),
    ("bscraper-poisson", 15, lambda r, i: poisson(r, BROWSER, 1.2, "GET", "/products/{n}", 1)),
    ("bscraper-pageload", 15, lambda r, i: browser_pageload_scraper(r, BROWSER)),
]
MIXES["trust then ramp"] = [
    *_base(),
    ("ramp", 20, lambda r, i: trust_then_ramp(r, f"{BROWSER} r{i}")),
]
MIXES["quiet ramp"] = [
    *_base(),
    ("ramp-quiet", 20, lambda r, i: quiet_ramp(r, f"{BROWSER} q{i}")),
]
MIXES["adaptive attackers"] = [
    *_base(),
    ("aimd", 20, lambda r, i: aimd_attacker(r, BROWSER)),
]
MIXES["distributed stuffing"] = [
    *_base(),
    ("distributed", 300, lambda r, i: distributed_stuffer(r, BROWSER)),
]
MIXES["NAT"] = [
    *_base(),
    ("nat", 3, lambda r, i: nat_users(r, 25)),
    ("scraper", 10, lambda r, i: clockwork(r, "python-requests/2.31", 3.0, "GET", "/products/{n}", 1)),
]


def run_mix(mix: str, seed: int, seconds: float,
            decide: Callable[[float, str, str, str, str, int], bool]) -> dict[str, list[int]]:
    """Drive every client of ``mix`` against ``decide(t, key, method, path, ua, status)``;
    returns ``{kind: [sent, refused]}``. Same seed: same clients, same first requests
    (later ones may differ where a client adapts to refusals)."""
    rng = random.Random(seed)
    heap: list[tuple[float, int, str, str, Behaviour, Request]] = []
    seq = 0
    for kind, count, make in MIXES[mix]:
        for i in range(count):
            gen = make(random.Random(rng.random()), i)
            req = next(gen)
            seq += 1
            heap.append((req[0], seq, kind, f"{kind}-{i}", gen, req))
    heapq.heapify(heap)
    out: dict[str, list[int]] = {}
    while heap:
        t, s, kind, key, gen, req = heapq.heappop(heap)
        if t >= seconds:
            continue
        ok = decide(t, key, req[1], req[2], req[3], req[4])
        row = out.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += 0 if ok else 1
        nxt = gen.send(ok)
        heapq.heappush(heap, (max(nxt[0], t), s, kind, key, gen, nxt))
    return out


def scores(counts: dict[str, list[int]]) -> tuple[float, float]:
    """(legitimate requests refused %, abusive requests admitted %), per request."""
    ls = sum(v[0] for k, v in counts.items() if k in LEGIT)
    lr = sum(v[1] for k, v in counts.items() if k in LEGIT)
    as_ = sum(v[0] for k, v in counts.items() if k not in LEGIT)
    ar = sum(v[1] for k, v in counts.items() if k not in LEGIT)
    return lr / max(1, ls) * 100, (as_ - ar) / max(1, as_) * 100


def iter_kinds(counts: dict[str, list[int]]) -> Iterator[tuple[str, float]]:
    for k, (sent, refused) in sorted(counts.items()):
        yield k, refused / max(1, sent) * 100
