"""The demo: a small FastAPI shop under uvicorn, mixed traffic, and what pulsegate learnt.

    python3 dev.py demo [--seconds 20] [--concurrency 8]
    pulsegate demo

It starts the app on a free 127.0.0.1 port in this process (so the report reads the
live gate), drives weighted traffic at it with a progress bar, then prints one row per
endpoint: requests, observed latency, the forecast and its confidence, anomalies and
incidents flagged, and the N+1 queries found with their fix. Part-way through, the
``/slow`` endpoint regresses (its handler gets 4x slower) so there is something to find.
It stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulsegate.engine import PulseGate
from pulsegate.records import RequestRecord

# (path, weight) of the traffic mix; {n} is filled with a random id.
TRAFFIC = [("/fast", 30), ("/items/{n}", 25), ("/authors", 10), ("/authors/eager", 10),
           ("/slow", 15), ("/flaky", 10), ("/nowhere/{n}", 2)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Observed:
    """Per-endpoint observed latencies and counts, fed by an engine listener."""

    def __init__(self) -> None:
        self.latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=5000))
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.anomalies: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, record: RequestRecord, ctx: Any) -> None:
        with self.lock:
            key = record.endpoint
            self.latency[key].append(record.duration_ms)
            self.statuses[key][record.status // 100] += 1


async def drive(base: str, seconds: float, concurrency: int, state: dict[str, Any],
                progress: Any) -> int:
    import httpx

    deadline = time.monotonic() + seconds
    paths = [p for p, _ in TRAFFIC]
    weights = [w for _, w in TRAFFIC]
    sent = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        rng = random.Random()
        while (now := time.monotonic()) < deadline:
            state["degraded"] = now > deadline - seconds * 0.35
            path = rng.choices(paths, weights)[0].format(n=rng.randint(1, 500))
            try:
                await client.get(path)
            except httpx.HTTPError:
                pass
            sent += 1
            await asyncio.sleep(rng.uniform(0.0, 0.01))

    async def ticker() -> None:
        start = time.monotonic()
        while time.monotonic() < deadline:
            progress(min(1.0, (time.monotonic() - start) / seconds), sent)
            await asyncio.sleep(0.2)
        progress(1.0, sent)

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await asyncio.gather(ticker(), *(worker(client) for _ in range(concurrency)))
    return sent


def _progress_printer() -> Any:
    def show(fraction: float, sent: int) -> None:
        bar = "#" * int(fraction * 40)
        sys.stdout.write(f"\r  traffic [{bar:<40s}] {fraction * 100:5.1f} %  {sent} requests")
        sys.stdout.flush()
        if fraction >= 1.0:
            sys.stdout.write("\n")
    return show


def report(gate: PulseGate, observed: Observed) -> list[dict[str, Any]]:
    """One row per endpoint, most requested first."""
    rows = []
    detections = _detections_by_endpoint(gate)
    incidents: dict[str, int] = defaultdict(int)
    for incident in gate.incidents:
        incidents[incident["endpoint"]] += 1
    anomalies: dict[str, int] = defaultdict(int)
    for record in gate.recent_anomalies:
        anomalies[record.endpoint] += 1
    for summary in gate.endpoints():
        key = summary["endpoint"]
        with observed.lock:
            lat = list(observed.latency.get(key, ()))
            statuses = dict(observed.statuses.get(key, {}))
        recent = lat[-50:]
        rows.append({
            "endpoint": key, "requests": summary["requests"],
            "observed_p50_ms": statistics.median(recent) if recent else None,
            "forecast_ms": summary["predicted_ms"], "confidence": summary["confidence"],
            "anomalies": anomalies[key], "incidents": incidents[key],
            "errors": statuses.get(5, 0), "nplusone": detections.get(key, []),
        })
    return rows


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

    headers = ["endpoint", "requests", "observed p50 ms", "forecast ms", "confidence",
               "anomalies", "incidents", "5xx", "N+1 fix"]
    body = [[r["endpoint"], str(r["requests"]), fmt(r["observed_p50_ms"]),
             fmt(r["forecast_ms"]), fmt(r["confidence"], ".0f"), str(r["anomalies"]),
             str(r["incidents"]), str(r["errors"]), "; ".join(r["nplusone"]) or "-"]
            for r in rows]
    if Console is not None:
        table = Table(title="pulsegate: what each endpoint taught the model")
        for h in headers:
            table.add_column(h, justify="left" if h in ("endpoint", "N+1 fix") else "right")
        for line in body:
            table.add_row(*line)
        Console(width=160).print(table)
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for line in body:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    print(f"requests {stats['requests']}, anomalies {stats['anomalies']}, incidents "
          f"{stats['incidents']}, 5xx {stats['errors']}, internal errors "
          f"{stats['internal_errors']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulsegate demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="traffic duration")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    args = parser.parse_args(argv)

    import uvicorn

    gate = PulseGate(warmup=20, aggregation_window=1.0)
    observed = Observed()
    gate.listeners.append(observed)
    state: dict[str, Any] = {"degraded": False}
    with tempfile.TemporaryDirectory(prefix="pulsegate-demo-") as tmp:
        from pulsegate.demo_app import build_app

        app = build_app(gate, Path(tmp) / "demo.sqlite3", state)
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
        try:
            asyncio.run(drive(f"http://127.0.0.1:{port}", args.seconds, args.concurrency,
                              state, _progress_printer()))
        finally:
            server.should_exit = True
            thread.join(10)
        print_report(report(gate, observed), gate.stats())
        gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
