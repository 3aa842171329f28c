"""What model management costs: per request (the prediction listener) and per snapshot.

    .venv/bin/python benchmarks/registry_overhead.py [--requests 50000] [--endpoints 1000]

1. Per request: the engine driven directly (begin / response_headers / finish) with and
   without the registry's listener, interleaved rounds in one run, median per round.
   The listener only compares two counters and one float unless something was detected.
2. Per snapshot: SQLite write of ``--endpoints`` endpoint models (plus registry rows),
   and the restore (merge + load) a restarted gate does at start-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo


def drive(gate: PulseGate, n: int, paths: list[str]) -> float:
    info = [RequestInfo("GET", p, p) for p in paths]
    k = len(info)
    t0 = time.perf_counter()
    for i in range(n):
        ctx = gate.begin(info[i % k])
        assert ctx is not None
        gate.response_headers(ctx, 200)
        gate.finish(ctx)
    return (time.perf_counter() - t0) / n * 1e6


def per_request(n: int, rounds: int) -> None:
    paths = [f"/r{i}" for i in range(20)]
    with_ops = PulseGate(measure_memory=False)
    without = PulseGate(measure_memory=False)
    without.notable_listeners.remove(without.ops.on_request)
    for g in (with_ops, without):
        drive(g, 5000, paths)  # warm up the models past their warm-up
    a, b = [], []
    for _ in range(rounds):
        b.append(drive(without, n, paths))
        a.append(drive(with_ops, n, paths))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"per request, engine only: without registry listener {mb:.2f} µs, with "
          f"{ma:.2f} µs -> +{ma - mb:.2f} µs ({ma / mb:.3f}x), median of {rounds} rounds "
          f"of {n}; best rounds {min(b):.2f} vs {min(a):.2f} µs")
    # The listener alone, on a typical (not anomalous, no detection) request.
    ctx = with_ops.begin(RequestInfo("GET", "/r0", "/r0"))
    assert ctx is not None
    with_ops.response_headers(ctx, 200)
    rec = with_ops.finish(ctx)
    assert rec is not None
    rec = rec._replace(anomaly_score=0.1)
    listener = with_ops.ops.on_request
    calls = 200_000
    best, empty = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            listener(rec, ctx)
        best.append((time.perf_counter() - t0) / calls * 1e9)
        t0 = time.perf_counter()
        for _ in range(calls):
            pass
        empty.append((time.perf_counter() - t0) / calls * 1e9)
    print(f"registry listener alone: {min(best) - min(empty):.0f} ns per request "
          f"(best of {rounds} x {calls} calls, loop overhead subtracted)")
    for g in (with_ops, without):
        g.close()


def per_snapshot(endpoints: int) -> None:
    d = tempfile.mkdtemp(prefix="pulsegate-bench-")
    gate = PulseGate(state_dir=d, measure_memory=False, max_endpoints=endpoints)
    drive(gate, endpoints * 40, [f"/e{i}" for i in range(endpoints)])
    t0 = time.perf_counter()
    gate.ops.snapshot()
    full = time.perf_counter() - t0
    times = []
    for r in range(5):  # between snapshots, a tenth of the endpoints see traffic
        drive(gate, endpoints // 10, [f"/e{i}" for i in range(r, endpoints, 10)])
        t0 = time.perf_counter()
        gate.ops.snapshot()
        times.append(time.perf_counter() - t0)
    gate.close()
    t0 = time.perf_counter()
    again = PulseGate(state_dir=d, measure_memory=False, max_endpoints=endpoints)
    restore = time.perf_counter() - t0
    assert len(again.baselines) == endpoints
    again.close()
    bare0 = time.perf_counter()
    PulseGate(measure_memory=False, max_endpoints=endpoints).close()
    bare = time.perf_counter() - bare0
    print(f"snapshot to SQLite (background thread): all {endpoints} endpoints "
          f"{full * 1e3:.1f} ms; with a tenth changed, median {statistics.median(times) * 1e3:.1f} "
          f"ms; start-up with restore {restore * 1e3:.1f} ms vs {bare * 1e3:.1f} ms cold")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--endpoints", type=int, default=1000)
    args = ap.parse_args()
    per_request(args.requests, args.rounds)
    per_snapshot(args.endpoints)


if __name__ == "__main__":
    main()
