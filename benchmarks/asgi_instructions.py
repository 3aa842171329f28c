"""Per-request cost in CPU instructions, immune to a busy machine: bare Starlette vs
pulsegate vs OpenTelemetry's ASGI middleware, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/asgi_instructions.py [--requests 2000]

Each stack runs twice under callgrind (a warm-up count and warm-up + N requests); the
difference divided by N is the instructions one request costs. Wall-clock time adds what
instructions do not show (system calls such as the thread CPU clock, cache misses), so
read this beside asgi_overhead.py, not instead of it. Needs valgrind (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WARMUP = 500


def child(stack: str, n: int) -> None:
    sys.path.insert(0, str(HERE))
    from asgi_overhead import SCOPE_BASE, bare, with_otel, with_pulsegate

    build = {"bare": bare, "otel": with_otel}.get(stack) or with_pulsegate()
    app: Any = build()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def main() -> None:
        for i in range(n):
            p = f"/hello/u{i % 50}"
            await app({**SCOPE_BASE, "path": p, "raw_path": p.encode()}, receive, send)

    asyncio.run(main())


def count(stack: str, n: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--child", stack, str(n)], capture_output=True, text=True, env=env)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed for {stack}: {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    per: dict[str, float] = {}
    for stack in ("bare", "pulsegate", "otel"):
        per[stack] = (count(stack, WARMUP + args.requests) - count(stack, WARMUP)) / args.requests
    added_pg, added_otel = per["pulsegate"] - per["bare"], per["otel"] - per["bare"]
    print(f"instructions per request ({args.requests} requests after {WARMUP} warm-up)")
    for stack, value in per.items():
        print(f"{stack:10s} {value:12,.0f} {value - per['bare']:+12,.0f}")
    print(f"pulsegate adds {added_pg / added_otel * 100:.1f} % of what OpenTelemetry adds")


if __name__ == "__main__":
    main()
