"""What the advisor costs a request, in bytecodes (deterministic), on the engine alone.

    .venv/bin/python benchmarks/advisor_overhead.py [--requests 2000]

Three gates, each request running one SQL statement (its event added as the SQL hooks
add it): without the advisor; with ``Advisor(gate)`` (patterns and capacity only: no
listener, jobs on the scheduler); with ``Advisor(gate, connect=..., dialect="sqlite")``
(query advice: one listener that appends the request's statement list to a bounded
deque). The scheduler's jobs are not run inside the count: they are off the request
path. ``benchmarks/bytecodes.py`` is unchanged by the advisor (nothing of it is
registered unless it is built).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import count_bytecodes

from pulsegate.advisor import Advisor
from pulsegate.engine import PulseGate
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo

EVENT = QueryEvent(sql="SELECT id FROM items WHERE owner = ?", duration_ms=1.0, db="sqlite")


def driver(kind: str) -> Callable[[int], None]:
    gate = PulseGate()
    if kind == "patterns":
        Advisor(gate)
    elif kind == "queries":
        Advisor(gate, connect=lambda: sqlite3.connect(":memory:"), dialect="sqlite")

    def drive(n: int) -> None:
        for i in range(n):
            ctx = gate.begin(RequestInfo("GET", f"/items/{i % 50}", "/items/{id}"))
            assert ctx is not None
            ctx.add_query(EVENT)
            gate.response_headers(ctx, 200)
            gate.finish(ctx)
    return drive


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args(argv)
    per = {}
    for kind in ("off", "patterns", "queries"):
        drive = driver(kind)
        drive(300)  # warm caches
        per[kind] = sum(count_bytecodes(drive, args.requests).values()) / args.requests
    base = per["off"]
    print(f"bytecodes per request ({args.requests} requests, one statement each)")
    for kind, label in (("off", "no advisor"), ("patterns", "Advisor(gate): patterns, capacity"),
                        ("queries", "Advisor(gate, connect=...): + query advice")):
        print(f"  {label:40} {per[kind]:8.1f}  {per[kind] - base:+7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
