"""The real pages of ``real_pages.py`` under a real server and load: Flask and Django
under gunicorn (one sync worker), FastAPI under uvicorn; the server pinned to one CPU
and ``wrk`` (Debian's package) to the other. For each stack (bare, OpenTelemetry,
pulsegate): requests per second, the share of the bare stack's throughput kept, and the
server's CPU time per request (user + system of the worker, from ``/proc``).

    .venv/bin/python benchmarks/real_server.py [--duration 10] [--rows 25]
                                               [--families flask,django,fastapi]

On a machine shared with other work the throughput moves with the neighbours; the CPU
time per request is the steadier figure. Run it on an idle machine for the table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STACKS = ("bare", "otel", "pulsegate")
URLS = {"flask": "/posts", "django": "/books/", "fastapi": "/api/v1/posts"}
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    """``cmd`` on one CPU (taskset), when there are two CPUs and taskset to do it."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def server_cmd(family: str, port: int) -> list[str]:
    if family == "fastapi":
        return [sys.executable, "-m", "uvicorn", "real_server_app:application", "--port",
                str(port), "--log-level", "warning", "--no-access-log"]
    return [sys.executable, "-m", "gunicorn", "real_server_app:application", "--bind",
            f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (gunicorn's worker is a child)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def wait_ready(url: str, timeout: float = 120.0) -> None:
    """Until ``url`` answers 200: the port opens before the worker has imported the app."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, duration: float, connections: int) -> tuple[float, int]:
    """(requests per second, requests) of one wrk run."""
    out = subprocess.run(pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", url]),
                         capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or total is None:
        raise RuntimeError(out)
    return float(rate.group(1)), int(total.group(1))


def measure(family: str, stack: str, rows: int, duration: float,
            connections: int) -> tuple[float, float]:
    """(requests per second, server CPU µs per request)."""
    port = free_port()
    env = dict(os.environ, REAL_FAMILY=family, REAL_STACK=stack, PYTHONPATH=os.pathsep.join(
        [str(HERE), str(ROOT / "src")]))
    proc = subprocess.Popen(pinned(0, server_cmd(family, port)), cwd=HERE, env=env)
    try:
        url = f"http://127.0.0.1:{port}{URLS[family]}?rows={rows}"
        wait_ready(url)
        wrk(url, max(1.0, duration / 4), connections)  # warm: caches, the endpoint model
        cpu0 = cpu_seconds(proc.pid)
        rate, total = wrk(url, duration, connections)
        cpu = cpu_seconds(proc.pid) - cpu0
        return rate, cpu / max(total, 1) * 1e6
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per stack")
    ap.add_argument("--rows", type=int, default=25, help="rows listed: rows + 1 statements")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--families", default="flask,django,fastapi")
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("real_server.py needs wrk (Debian: apt-get install wrk)")
    print(f"{'family':8} {'stack':10} {'req/s':>9} {'kept':>7} {'CPU µs/req':>11} {'added':>9}")
    for family in args.families.split(","):
        base_rate = base_cpu = 0.0
        for stack in STACKS:
            rate, cpu = measure(family, stack, args.rows, args.duration, args.connections)
            if stack == "bare":
                base_rate, base_cpu = rate, cpu
            print(f"{family:8} {stack:10} {rate:9.1f} {100 * rate / max(base_rate, 1e-9):6.1f}% "
                  f"{cpu:11.1f} {cpu - base_cpu:+9.1f}", flush=True)


if __name__ == "__main__":
    main()
