"""Memory stays flat: 1 M requests over 1 000 routes plus 200 000 random unmatched URLs.

Drives the engine's request cycle directly (begin, response headers, finish -- the same
calls every adapter makes) and samples the process RSS every 50 000 requests. A final
phase sends 200 000 requests over 20 000 *distinct* route templates (far beyond
``max_endpoints``) to show the LRU cap, not the traffic, bounds the models.

    .venv/bin/python benchmarks/memory.py [--requests 1000000] [--routes 1000]

Memory is flat when RSS after warm-up (the first 10 %) grows by less than 2 MiB.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import time

from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--routes", type=int, default=1_000)
    ap.add_argument("--unmatched", type=int, default=200_000)
    ap.add_argument("--max-endpoints", type=int, default=1_100)
    args = ap.parse_args()

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
