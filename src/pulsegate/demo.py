"""The demo: a small FastAPI shop under uvicorn, mixed traffic, and what pulsegate learnt.

    python3 dev.py demo [--seconds 20] [--concurrency 8] [--slow-requests BEFORE AFTER]
    pulsegate demo

It starts the app on a free 127.0.0.1 port in this process (so the report reads the live gate),
drives weighted traffic at it with a progress bar, then prints one row per endpoint: requests, latency,
the forecast and its confidence, anomalies, incidents, 429s and 503s, and the N+1 queries with their fix.

Along the way: ``/slow`` regresses 4x for the last third; a scraper on its own API key is throttled
(429), the regular clients are not; a spike of low-priority ``/report`` exports is shed (503) before it
hurts ``/fast``; catalog pages come from the response cache; a background job runs beside. It stops.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulsegate.advisor.show import summary_lines
from pulsegate.demo_cache import CACHE_CONFIG, PAGES, cache_lines, editor, new_checks
from pulsegate.demo_healing import HEALING_CONFIG, healing_lines, switched_on_at
from pulsegate.demo_io import print_io
from pulsegate.demo_jobs import DemoJobs, print_jobs
from pulsegate.engine import PulseGate
from pulsegate.records import RequestRecord

# (path, weight) of the regular clients' mix; {n} is filled with a random id.
TRAFFIC = [("/fast", 19), ("/items/{n}", 15), ("/authors", 10), ("/authors/eager", 10),
           ("/slow", 15), ("/flaky", 10), ("/reviews/{n}", 5), ("/nowhere/{n}", 2),
           ("/pricing/{n}", 6), ("/catalog/{page}", 10)]

#: The gate the demo runs: short warm-up and windows so a 20 s run shows everything;
#: per-client rate limits keyed by API key; the allocator with route priorities.
DEMO_CONFIG: dict[str, Any] = {
    "warmup": 20, "aggregation_window": 1.0, "exclude_paths": ("/upstream",),
    "cache_reuse_sample": 1,
    "cache_key_words": ("price",),  # installed, the demo is a library (docs/caches.md)
    "rate_limiting": True, "rate_limit": "40/second", "rate_limit_burst": 40,
    "client_key": "header:x-api-key",
    "resource_allocation": True, "target_latency_ms": 40, "max_queue_wait": 0.02,
    "priority_rules": {"/fast": "high", "/report": "low"},
}


#: What the report's words mean, printed under the table.
LEGEND = (
    "outlier requests: single requests far slower than their endpoint's forecast (high "
    "x-ml-anomaly-score: a GC pause, a cold cache); not a change of the endpoint",
    "incidents: the endpoint itself changed: its 1 s windows kept sitting above its learnt "
    "baseline, judged on the evidence of many requests",
    "UNMATCHED: requests no route matched (the 404s to /nowhere/...), pooled as one endpoint",
    "p50/p95 (run): over the whole run; forecast (now): the model's expectation at the end",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Observed:
    """Per-endpoint observed (start wall time, latency ms) and counts, fed by an engine
    listener."""

    def __init__(self) -> None:
        self.latency: dict[str, deque[tuple[float, float]]] = defaultdict(
            lambda: deque(maxlen=20000))
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.anomalies: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, record: RequestRecord, ctx: Any) -> None:
        with self.lock:
            key = record.endpoint
            self.latency[key].append((record.started_at, record.duration_ms))
            self.statuses[key][record.status] += 1


class Tally:
    """Client-side counts: what each kind of client got back."""

    def __init__(self) -> None:
        self.by_client: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, client: str, status: int) -> None:
        self.by_client[client][status] += 1

    def count(self, client: str, status: int | None = None) -> int:
        codes = self.by_client.get(client, {})
        return sum(codes.values()) if status is None else codes.get(status, 0)


async def drive(base: str, seconds: float, concurrency: int, state: dict[str, Any],
                progress: Any, tally: Tally, slow_requests: tuple[int, int] = (0, 0)) -> int:
    import httpx

    start = time.monotonic()
    deadline = start + seconds
    paths = [p for p, _ in TRAFFIC]
    weights = [w for _, w in TRAFFIC]
    sent = 0

    async def call(client: httpx.AsyncClient, who: str, key: str, path: str) -> None:
        nonlocal sent
        try:
            r = await client.get(path, headers={"x-api-key": key})
            tally.add(who, r.status_code)
        except httpx.HTTPError:
            tally.add(who, 0)
        sent += 1

    async def regular(client: httpx.AsyncClient, i: int) -> None:
        rng = random.Random(i)
        while time.monotonic() < deadline:
            path = rng.choices(paths, weights)[0].format(n=rng.randint(1, 500), page=rng.randint(1, PAGES))
            await call(client, "regular", f"user-{i}", path)
            await asyncio.sleep(rng.uniform(0.02, 0.06))

    async def scraper(client: httpx.AsyncClient) -> None:
        rng = random.Random(99)
        await asyncio.sleep(seconds * 0.2)
        while time.monotonic() < deadline:
            await call(client, "scraper", "scraper-key", f"/items/{rng.randint(1, 10_000)}")
            await asyncio.sleep(0.002)

    async def exporter(client: httpx.AsyncClient, i: int) -> None:
        # The spike: many concurrent exports in the middle third of the run.
        await asyncio.sleep(seconds * 0.35)
        while time.monotonic() < start + seconds * 0.65:
            await call(client, "export", f"export-{i}", "/report")

    async def health_check(client: httpx.AsyncClient) -> None:
        # A synthetic check polls /slow steadily (as an uptime monitor would): enough
        # requests for its incident detector to learn /slow before the regression. It
        # starts the regression, and by count: after at least slow_requests[0] checks (a
        # late start moves the deadline: the last third stays a third), and the check
        # goes on past the deadline until slow_requests[1] checks came after it.
        nonlocal deadline
        done = [0, 0]  # checks before, after the regression
        while True:
            now = time.monotonic()
            if now > deadline - seconds * 0.35 and done[0] >= slow_requests[0] and not state["degraded"]:
                state["degraded"], state["degraded_at"] = True, time.time()
                deadline = max(deadline, now + seconds * 0.35)
            if now >= deadline and state["degraded"] and done[1] >= slow_requests[1]:
                break
            await call(client, "check", "health-check", "/slow")
            done[state["degraded"]] += 1
            await asyncio.sleep(0.02)

    async def ticker() -> None:
        while time.monotonic() < deadline:
            progress(min(1.0, (time.monotonic() - start) / seconds), sent)
            await asyncio.sleep(0.2)
        progress(1.0, sent)

    limits = httpx.Limits(max_connections=concurrency * 4 + 8)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
        await asyncio.gather(ticker(), scraper(client), health_check(client), editor(client, deadline, state),
                             *(regular(client, i) for i in range(concurrency)),
                             *(exporter(client, i) for i in range(concurrency * 5)))
    return sent


def _progress_printer() -> Any:
    def show(fraction: float, sent: int) -> None:
        bar = "#" * int(fraction * 40)
        sys.stdout.write(f"\r  traffic [{bar:<40s}] {fraction * 100:5.1f} %  {sent} requests")
        sys.stdout.flush()
        if fraction >= 1.0:
            sys.stdout.write("\n")
    return show


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(gate: PulseGate, observed: Observed) -> list[dict[str, Any]]:
    """One row per endpoint, most requested first."""
    rows = []
    detections = _detections_by_endpoint(gate)
    incidents: dict[str, int] = defaultdict(int)
    for incident in gate.incidents():
        incidents[incident.endpoint] += 1
    outliers: dict[str, int] = defaultdict(int)
    for record in gate.recent_anomalies:
        outliers[record.endpoint] += 1
    for summary in gate.endpoints():
        key = summary["endpoint"]
        with observed.lock:
            lat = [ms for _, ms in observed.latency.get(key, ())]
            statuses = dict(observed.statuses.get(key, {}))
        rows.append({
            "endpoint": key, "requests": summary["requests"],
            "p50_ms": _quantile(lat, 0.5), "p95_ms": _quantile(lat, 0.95),
            "forecast_ms": summary["predicted_ms"], "confidence": summary["confidence"],
            "outliers": outliers[key], "incidents": incidents[key],
            "errors": statuses.get(500, 0), "throttled": statuses.get(429, 0),
            "shed": statuses.get(503, 0), "nplusone": detections.get(key, []),
        })
    return rows


def before_after(observed: Observed, endpoint: str, at: float,
                 until: float | None = None) -> dict[str, float | None]:
    """p50 and p95 (ms) of the endpoint's requests started before and after ``at`` (and
    before ``until``: when a healing action changed what the endpoint serves)."""
    with observed.lock:
        pairs = list(observed.latency.get(endpoint, ()))
    before = [ms for t, ms in pairs if t < at]
    after = [ms for t, ms in pairs if at <= t < (until or float("inf"))]
    return {"p50_before": _quantile(before, 0.5), "p95_before": _quantile(before, 0.95),
            "p50_after": _quantile(after, 0.5), "p95_after": _quantile(after, 0.95)}


def incident_lines(gate: PulseGate, observed: Observed, started: float,
                   regressed_at: float | None) -> list[str]:
    """Each incident with its magnitude and evidence and the endpoint's p50/p95 before and
    after the evidence began; and whether /slow's announced regression was flagged."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = []
    incidents = gate.incidents()
    for i in incidents:  # "after": until a healing action (if any) changed the endpoint
        ba = before_after(observed, i.endpoint, i.start, switched_on_at(gate, i.endpoint))
        lines.append(
            f"incident on {i.endpoint} since +{i.start - started:.1f} s (flagged at "
            f"+{i.at - started:.1f} s): {i.window_mean_ms:.1f} ms against {i.expected_ms:.1f} "
            f"ms expected ({i.ratio:.1f}x), over {i.requests} requests in {i.windows} windows;"
            f" p50 {ms(ba['p50_before'])} -> {ms(ba['p50_after'])} ms, p95 "
            f"{ms(ba['p95_before'])} -> {ms(ba['p95_after'])} ms")
    if regressed_at is not None and not any(i.endpoint == "GET /slow" for i in incidents):
        ba = before_after(observed, "GET /slow", regressed_at)
        lines.append(
            f"no incident flagged on GET /slow, regressed at +{regressed_at - started:.1f} s: "
            f"p50 {ms(ba['p50_before'])} -> {ms(ba['p50_after'])} ms, p95 "
            f"{ms(ba['p95_before'])} -> {ms(ba['p95_after'])} ms (too little evidence yet)")
    if not incidents:
        lines.append("no incidents")
    return lines


def _detections_by_endpoint(gate: PulseGate) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for det in list(getattr(gate, "detections", ()) or ()):
        endpoint = det.get("endpoint") if isinstance(det, dict) else getattr(det, "endpoint", None)
        kind = det.get("kind") if isinstance(det, dict) else getattr(det, "kind", None)
        fix = det.get("suggestion") if isinstance(det, dict) else getattr(det, "suggestion", None)
        if endpoint and kind == "n_plus_one" and fix and fix not in out[endpoint]:
            out[endpoint].append(fix)
    return out


def print_report(rows: Sequence[dict[str, Any]], stats: dict[str, Any]) -> None:
    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None  # type: ignore[assignment,misc]

    headers = ["endpoint", "requests", "p50 ms (run)", "p95 ms (run)", "forecast ms (now)",
               "confidence", "outlier requests", "incidents", "429", "503", "5xx app", "N+1"]
    body = [[r["endpoint"], str(r["requests"]), fmt(r["p50_ms"]), fmt(r["p95_ms"]),
             fmt(r["forecast_ms"]), fmt(r["confidence"], ".0f"), str(r["outliers"]),
             str(r["incidents"]), str(r["throttled"]), str(r["shed"]), str(r["errors"]),
             "yes" if r["nplusone"] else "-"]
            for r in rows]
    if Console is not None:
        table = Table(title="pulsegate: what each endpoint taught the model")
        for h in headers:
            table.add_column(h, justify="left" if h == "endpoint" else "right")
        for line in body:
            table.add_row(*line)
        Console(width=160).print(table)
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for line in body:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    for text in LEGEND:
        print(text)
    print(f"requests {stats['requests']}, outlier requests {stats['anomalies']}, incidents "
          f"{stats['incidents']}, throttled {stats['throttled']}, shed {stats['shed']}, "
          f"internal errors {stats['internal_errors']}")


def print_query_insights(gate: PulseGate) -> None:
    """The query problems found, ranked across requests, each with its fix."""
    for row in gate.query_insights(limit=5):
        print(f"{row['kind']} on {', '.join(row['endpoints'])}: {row['mean_count']:.0f} x "
              f"{row['sql'][:90]} ({row['requests']} requests, {row['total_ms']:.0f} ms in all)")
        if row.get("relationship"):
            print(f"    relationship: {row['relationship']}")
        if row.get("call_site"):
            print(f"    at {row['call_site']}")
        print(f"    fix: {row['suggestion']}")


def print_control(gate: PulseGate) -> None:
    """The allocator's learned limit and who it shed, by priority."""
    control = gate.stats().get("control") or {}
    alloc = control.get("allocator")
    if alloc:
        shed, admitted = alloc["shed"], alloc["admitted"]
        print(f"allocator: learned concurrency limit {alloc['limit']}; shed high "
              f"{shed['high']}/{admitted['high'] + shed['high']}, normal {shed['normal']}/"
              f"{admitted['normal'] + shed['normal']}, low {shed['low']}/"
              f"{admitted['low'] + shed['low']}")


def print_clients(tally: Tally) -> None:
    """What each kind of client experienced: the scraper throttled, the regular clients
    not, the export spike shed."""
    for who, what in (("regular", "regular clients (one API key each)"),
                      ("scraper", "scraper (one API key, flat out)"),
                      ("check", "health check polling /slow"),
                      ("export", "low-priority /report spike")):
        total = tally.count(who)
        if not total:
            continue
        t, s = tally.count(who, 429), tally.count(who, 503)
        print(f"{what:38s} {total:6d} requests: {t:5d} throttled (429) "
              f"{t / total * 100:5.1f} %, {s:5d} shed (503) {s / total * 100:5.1f} %")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsegate demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="traffic duration")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--slow-requests", type=int, nargs=2, default=(0, 0), metavar=("BEFORE", "AFTER"),
                        help="at least this many /slow checks before its regression and after it "
                             "(a loaded machine runs longer than --seconds)")
    args = parser.parse_args(argv)

    import logging

    import uvicorn

    # pulsegate logs each detection and incident; the demo shows them in its report
    # instead, so the progress bar stays on one line.
    logging.getLogger("pulsegate").addHandler(logging.NullHandler())
    logging.getLogger("pulsegate").propagate = False
    observed, state = Observed(), {"degraded": False, "catalog": new_checks()}
    with tempfile.TemporaryDirectory(prefix="pulsegate-demo-") as tmp:
        from pulsegate.demo_app import build_app

        db = Path(tmp) / "demo.sqlite3"
        # the query advisor from settings: plans on a read-only connection of its own
        gate = PulseGate(**DEMO_CONFIG, **HEALING_CONFIG, **CACHE_CONFIG, advisor=True, advisor_interval=5,
                         advisor_sample_interval=2, advisor_database=f"sqlite:///{db}")
        gate.listeners.append(observed)
        app = build_app(gate, db, state)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            print("the demo server did not start", file=sys.stderr)
            return 1
        print(f"pulsegate demo: FastAPI + SQLite on http://127.0.0.1:{port}, "
              f"{args.concurrency} clients for {args.seconds:.0f} s "
              f"(/slow regresses 4x for the last third)")
        tally, started, jobs = Tally(), time.time(), DemoJobs(gate, db).start()
        try:
            asyncio.run(drive(f"http://127.0.0.1:{port}", args.seconds, args.concurrency,
                              state, _progress_printer(), tally, tuple(args.slow_requests)))
        finally:
            server.should_exit = True
            thread.join(10)
        print_report(report(gate, observed), gate.stats())
        gate.control.healer.poll()  # the healer's job, once more: an incident at the very end
        print("\n".join(incident_lines(gate, observed, started, state.get("degraded_at"))
                        + healing_lines(gate, observed.latency["GET /slow"], started)
                        + cache_lines(gate, state)))
        print_query_insights(gate)
        print_io(gate)
        jobs.stop()
        print_jobs(gate)
        gate.advisor.sample()
        gate.advisor.run()  # the advisor's job, once more now that the traffic is over
        print("\n".join(summary_lines(gate.advisor.report())))
        print_clients(tally)
        print_control(gate)
        gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
