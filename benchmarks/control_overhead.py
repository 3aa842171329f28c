"""Per-request cost of the control step (rate limiter + allocator).

    .venv/bin/python benchmarks/control_overhead.py [--n 20000] [--rounds 7]
    .venv/bin/python benchmarks/control_overhead.py --callgrind [--n 2000]

``--callgrind`` counts CPU instructions per request instead (valgrind; deterministic,
immune to a busy machine): ``PulseGate.admit`` (blocking runner) and ``admit_async``
(asyncio runner) + ``Controller.finish``, each case run under callgrind with 0 and with N
requests, the difference divided by N; hash seed fixed, set-up frozen out of the
garbage collector and collection off, so two commits compare to a fraction of a percent
(run the script from each commit's checkout).

Times exactly what the engine adds when control is on -- ``Controller.admit`` (client
key, bucket check, RateLimit fields, admission) and ``Controller.finish`` (release the
slot, queue the request for its behaviour profile) -- over pre-built request contexts,
200 clients, and separately the background cost (``Controller.flush``, which folds the
queued requests into the profiles on the scheduler thread). Best of N rounds, since a
shared machine only ever adds time. With control off the engine pays one ``is None``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pulsegate.context import RequestContext, query_sink
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord

CASES: dict[str, dict[str, object]] = {
    "rate limiting": {"rate_limiting": True, "rate_limit": "1000000/second"},
    "allocation": {"resource_allocation": True},
    "both": {"rate_limiting": True, "rate_limit": "1000000/second",
             "resource_allocation": True},
}


def started(opts: dict[str, object], n: int) -> tuple[PulseGate, list[RequestContext],
                                                      RequestRecord]:
    """A gate with ``opts`` (scheduler stopped), ``n`` requests begun side by side, and
    the record each will finish with."""
    gate = PulseGate(measure_memory=False, query_analysis=False, **opts)  # type: ignore[arg-type]
    gate.scheduler.stop()
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
    return gate, ctxs, record


def one_round(opts: dict[str, object], n: int) -> tuple[float, float]:
    gate, ctxs, record = started(opts, n)
    control = gate.control
    assert control is not None
    t0 = time.perf_counter()
    for ctx in ctxs:
        control.admit(ctx)
        control.finish(ctx, record)
    t1 = time.perf_counter()
    control.flush()
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def counted(opts: dict[str, object], n: int, runner: str) -> None:
    """The callgrind child: set up, then admit + finish ``n`` requests."""
    gate, ctxs, record = started(opts, n + 200)
    control = gate.control
    assert control is not None
    gc.freeze()
    gc.disable()
    if runner == "sync":
        for ctx in ctxs:
            gate.admit(ctx)
            control.finish(ctx, record)
    else:
        async def drive() -> None:
            for ctx in ctxs:
                await gate.admit_async(ctx)
                control.finish(ctx, record)

        asyncio.run(drive())


def instructions(case: str, n: int, runner: str) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--child", case, runner, str(n)],
        capture_output=True, text=True, env=env, check=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    assert m is not None, out[-2000:]
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    if args.child:
        counted(CASES[args.child[0]], int(args.child[2]), args.child[1])
        return 0
    if args.callgrind:
        n = args.n or 2000
        print("| control on | runner | instructions per request (admit + finish) |")
        print("|---|---|---|")
        for name in CASES:
            for runner in ("sync", "async"):
                per = (instructions(name, n, runner) - instructions(name, 0, runner)) / n
                print(f"| {name} | {runner} | {per:,.0f} |", flush=True)
        return 0
    args.n = args.n or 20000
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
