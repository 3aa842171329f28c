"""The demo: a small FastAPI shop under uvicorn, mixed traffic, and what pulsegate learnt.

    python3 dev.py demo [--seconds 20] [--concurrency 8] [--slow-requests BEFORE AFTER]
    pulsegate demo

It starts the app on a free 127.0.0.1 port in this process (so the report reads the live gate),
drives weighted traffic at it with a progress bar, then prints one row per endpoint: requests, latency,
the forecast and its confidence, anomalies, incidents, 429s and 503s; then the query findings (N+1 and
the advisor's, ranked by ROI, with their fix) and what the detection stream delivered to a webhook.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulsegate.advisor.show import summary_lines
from pulsegate.demo_cache import CACHE_CONFIG, PAGES, cache_lines, editor, new_checks
from pulsegate.demo_healing import HEALING_CONFIG, healing_lines
from pulsegate.demo_io import print_io
from pulsegate.demo_jobs import DemoJobs, print_jobs
from pulsegate.demo_report import (
    Observed,
    Tally,
    incident_lines,
    print_clients,
    print_control,
    print_query_findings,
    print_report,
    report,
)
from pulsegate.demo_stream import attach as attach_stream
from pulsegate.demo_stream import stream_lines
from pulsegate.engine import PulseGate

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        stream, receiver = attach_stream(gate)  # the detection stream, to a webhook
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
        # the stream's last runs happen here, after the healer's and the advisor's
        gate.scheduler.cancel("detection-stream")
        print_io(gate)
        jobs.stop()
        print_jobs(gate)
        gate.advisor.sample()
        gate.advisor.run()  # the advisor's job, once more now that the traffic is over
        print_query_findings(gate)
        print("\n".join(summary_lines(gate.advisor.report(), limit=0)))  # capacity
        for _ in range(20):  # the stream's job until what the end added is sent
            stream.run()
            if not any(s["backlog"] for s in stream.stats()["sinks"].values()):
                break
        print("\n".join(stream_lines(stream, receiver)))
        receiver.close()
        print_clients(tally)
        print_control(gate)
        gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
