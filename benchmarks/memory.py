"""Memory stays flat: 1 M requests over 1 000 routes plus 200 000 random unmatched URLs.

Drives the engine's request cycle directly (begin, response headers, finish -- the same
calls every adapter makes) and samples the process RSS every 50 000 requests. A final
phase sends 200 000 requests over 20 000 *distinct* route templates (far beyond
``max_endpoints``) to show the LRU cap, not the traffic, bounds the models.

    .venv/bin/python benchmarks/memory.py [--requests 1000000] [--routes 1000]

Memory is flat when RSS after warm-up (the first 10 %) grows by less than 2 MiB.

``--clients N`` adds the per-client phase (issue 18): N distinct clients send 3 requests
each whose path, query string and User-Agent are ``--field-sizes`` bytes long, through
the rate limiter's public calls (``check`` and ``observe``, what the middleware does);
tracemalloc counts the bytes still held afterwards per client -- bucket, behaviour
profile, map entries and the key itself. Flat means the same figure whatever the
request size (target: at most 1 KiB per client).

    .venv/bin/python benchmarks/memory.py --requests 0 --unmatched 0 --clients 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import time
import tracemalloc

from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def bytes_per_client(clients: int, size: int, requests: int = 3) -> float:
    """Bytes the limiter still holds per client after ``clients`` clients sent
    ``requests`` requests each with ``size``-byte path, query and User-Agent."""
    limiter = AdaptiveRateLimiter("100/minute", max_clients=2 * clients)  # no eviction
    rng = random.Random(size)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = 0.0
    for c in range(clients):
        key = f"ip:10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}"
        for _ in range(requests):
            t += 0.01
            fill = f"{rng.getrandbits(64):016x}" * (size // 16 + 1)
            path, query, ua = "/p/" + fill[:size], "q=" + fill[1:size], "UA/" + fill[2:size]
            limiter.check(key)
            record = RequestRecord("GET", "/p/{x}", path, 200, t, 1.0, 1.0, None, None)
            limiter.observe(key, record, ua, query, now=t)
    del fill, record, path, query, ua  # the last request's strings are not the client's
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return held / clients


def clients_phase(clients: int, sizes: list[int]) -> None:
    print(f"per-client memory: {clients} clients x 3 requests, path/query/User-Agent of "
          "each size (bucket + behaviour profile + map entries + key, tracemalloc)")
    print(f"{'field bytes':>11s} {'bytes per client':>16s}")
    figures = []
    for size in sizes:
        b = bytes_per_client(clients, size)
        figures.append(b)
        print(f"{size:11d} {b:16.0f}")
    spread = max(figures) - min(figures)
    print(f"bytes per client: {min(figures):.0f}-{max(figures):.0f} (spread {spread:.0f} B "
          f"over {min(sizes)}-{max(sizes)} B requests: "
          f"{'flat' if spread < 64 else 'GROWING with request size'}; "
          f"{'within' if max(figures) <= 1024 else 'OVER'} the 1 KiB target)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--routes", type=int, default=1_000)
    ap.add_argument("--unmatched", type=int, default=200_000)
    ap.add_argument("--max-endpoints", type=int, default=1_100)
    ap.add_argument("--clients", type=int, default=0,
                    help="run the per-client phase with this many clients (0: skip)")
    ap.add_argument("--field-sizes", default="16,256,2048,8192",
                    help="request field sizes for the per-client phase, bytes")
    args = ap.parse_args()
    if args.clients:
        clients_phase(args.clients, [int(x) for x in args.field_sizes.split(",")])
        if not args.requests and not args.unmatched:
            return

    gate = PulseGate(max_endpoints=args.max_endpoints)
    rng = random.Random(7)
    routes = [f"/api/r{i}/{{id}}" for i in range(args.routes)]
    total = args.requests + args.unmatched
    unmatched_every = max(1, total // max(1, args.unmatched))
    samples: list[tuple[int, float, int]] = []
    t0 = time.perf_counter()
    for i in range(total):
        if i % unmatched_every == 0:
            info = RequestInfo("GET", f"/{rng.getrandbits(64):x}/{rng.random()}", None)
            status = 404
        else:
            info = RequestInfo("GET", "/api", routes[i % args.routes])
            status = 200
        ctx = gate.begin(info)
        if ctx is not None:
            gate.response_headers(ctx, status)
            gate.finish(ctx)
        if i % 50_000 == 0:
            gc.collect()
            samples.append((i, rss_mib(), len(gate.baselines)))
    elapsed = time.perf_counter() - t0
    gc.collect()
    samples.append((total, rss_mib(), len(gate.baselines)))

    print(f"{total} requests ({args.routes} routes + {args.unmatched} random unmatched URLs) "
          f"in {elapsed:.1f} s ({elapsed / total * 1e6:.1f} µs per request cycle)")
    print(f"{'requests':>10s} {'RSS MiB':>9s} {'endpoints':>9s}")
    for n, rss, eps in [*samples[:: max(1, len(samples) // 12)], samples[-1]]:
        print(f"{n:10d} {rss:9.1f} {eps:9d}")
    warm = samples[max(1, len(samples) // 10)][1]
    growth = samples[-1][1] - warm
    print(f"RSS after warm-up {warm:.1f} MiB -> end {samples[-1][1]:.1f} MiB: growth "
          f"{growth:+.2f} MiB ({'flat' if growth < 2.0 else 'GROWING'}); endpoints "
          f"{samples[-1][2]} <= max_endpoints {args.max_endpoints}")

    before = rss_mib()
    for i in range(200_000):
        ctx = gate.begin(RequestInfo("GET", "/x", f"/distinct/{i % 20_000}/{{id}}"))
        if ctx is not None:
            gate.response_headers(ctx, 200)
            gate.finish(ctx)
    gc.collect()
    print(f"20 000 distinct routes: endpoints {len(gate.baselines)} (cap {args.max_endpoints}), "
          f"evictions {gate.baselines.evictions}, RSS {before:.1f} -> {rss_mib():.1f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.1f} MiB; internal errors {gate.stats()['internal_errors']}")


if __name__ == "__main__":
    main()
