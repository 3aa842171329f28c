"""Per-request cost of the control step (rate limiter + allocator).

    .venv/bin/python benchmarks/control_overhead.py [--n 20000] [--rounds 7]

Times exactly what the engine adds when control is on -- ``Controller.admit`` (client
key, bucket check, RateLimit fields, admission) and ``Controller.finish`` (release the
slot, queue the request for its behaviour profile) -- over pre-built request contexts,
200 clients, and separately the background cost (``Controller.flush``, which folds the
queued requests into the profiles on the scheduler thread). Best of N rounds, since a
shared machine only ever adds time. With control off the engine pays one ``is None``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pulsegate.context import query_sink
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord

CASES: dict[str, dict[str, object]] = {
    "rate limiting": {"rate_limiting": True, "rate_limit": "1000000/second"},
    "allocation": {"resource_allocation": True},
    "both": {"rate_limiting": True, "rate_limit": "1000000/second",
             "resource_allocation": True},
}


def one_round(opts: dict[str, object], n: int) -> tuple[float, float]:
    gate = PulseGate(measure_memory=False, query_analysis=False, **opts)  # type: ignore[arg-type]
    gate.scheduler.stop()
    control = gate.control
    ctxs = []
    for i in range(n):
        ctx = gate.begin(RequestInfo("GET", "/items/1", "/items/{id}", f"10.0.0.{i % 200}"))
        assert ctx is not None
        # Each begin() sets the query sink; put the one before back, so that the
        # contexts stay side by side (as concurrent requests) rather than nested.
        if ctx.token is not None:
            query_sink.reset(ctx.token)
            ctx.token = None
        ctxs.append(ctx)
    record = RequestRecord("GET", "/items/{id}", "/items/1", 200, 0.0, 1.0, 1.0, 0.0, 0)
    t0 = time.perf_counter()
    for ctx in ctxs:
        control.admit(ctx)
        control.finish(ctx, record)
    t1 = time.perf_counter()
    control.flush()
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, opts in CASES.items():
            req, bg = one_round(opts, args.n)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], req), min(old[1], bg))
    print("| control on | µs per request on the request path | µs per request in the background |")
    print("|---|---|---|")
    for name, (req, bg) in best.items():
        print(f"| {name} | {req:.2f} | {bg:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
