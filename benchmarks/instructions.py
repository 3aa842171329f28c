"""Per-request cost in CPU instructions, immune to a busy machine: for each adapter, the
bare app vs pulsegate vs OpenTelemetry's instrumentation, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/instructions.py [--requests 2000] [--misses] [family ...]

Families: ``asgi`` (Starlette), ``asgi-full`` (the same with rate limiting and the
allocator on), ``wsgi`` (a bare WSGI callable), ``flask``, ``django`` (Django's WSGI
handler), ``engine`` (the framework-free core alone, no OpenTelemetry counterpart).

Each stack runs twice under callgrind (a warm-up count, and warm-up + N requests); the
difference divided by N is what one request costs. The set-up is frozen out of the
garbage collector's reach first (``gc.freeze()``, as a pre-forking server does) so that
a full collection walks only what the requests allocated: without it one more or one
fewer collection of the whole heap inside the window swings the count by thousands. Wall-clock time adds what
instructions do not show (system calls such as the thread CPU clock, cache misses), so
read this beside the ``*_overhead.py`` scripts, not instead of them. The counts are
deterministic to a fraction of a percent: use them to A/B a hot-path change. Needs
valgrind (Debian package).

``--misses`` also simulates this machine's caches (:data:`CACHES`) and prints the level-1
misses a request adds: the lines of interpreter code (I1) and of bytecode and objects (D1
read and write) the CPU fetches from its L2. Behind a large app they weigh as much as the
instructions: a Flask or Django request runs ≈ 570-610 k instructions of its own, which
evict the middleware's lines and predictor state between two of its steps, while a
Starlette request (≈ 90 k) leaves them in place -- which is how pulsegate can add the same
instructions and misses to Flask and to Starlette (``--misses flask asgi``) and still cost
Flask twice the microseconds (``wsgi_overhead.py`` vs ``asgi_overhead.py``).

``--lines`` (with ``--misses``) runs each counted request after :data:`EVICT` bytes of
memory traffic, so every cache line it touches -- interpreter code, bytecode, objects,
dicts -- misses the simulated last level once: the last-level misses a request adds are
the distinct lines it touches (its footprint), the figure that decides its cost behind a
large app. (The traffic itself is the same for every stack, and cancels out.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WARMUP = 500
FAMILIES = ("asgi", "asgi-full", "wsgi", "flask", "django", "engine")
STACKS = ("bare", "pulsegate", "otel")
#: Stacks some families count as well: Flask under OpenTelemetry's Flask instrumentation
#: (``otel`` is its WSGI middleware, the yardstick).
MORE_STACKS = {"flask": ("otel-flask",)}


def _asgi(stack: str, full: bool) -> Callable[[int], None]:
    from asgi_overhead import SCOPE_BASE, bare, with_otel, with_pulsegate

    options = {"rate_limiting": True, "rate_limit": "1000000/second",
               "resource_allocation": True} if full else {}
    app: Any = {"bare": bare, "otel": with_otel}.get(stack, with_pulsegate(**options))()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def main(n: int) -> None:
        for i in range(n):
            p = f"/hello/u{i % 50}"
            await app({**SCOPE_BASE, "path": p, "raw_path": p.encode()}, receive, send)

    return lambda n: asyncio.run(main(n))


def _wsgi_driver(app: Any, path: str) -> Callable[[int], None]:
    from werkzeug.test import create_environ
    from wsgi_overhead import serve

    def drive(n: int) -> None:
        for i in range(n):
            env = create_environ(path.format(i % 50), "http://localhost/",
                                 headers={"User-Agent": "bench"})
            env["REMOTE_ADDR"] = "127.0.0.1"
            serve(app, env)
    return drive


def _wsgi(stack: str, flask: bool) -> Callable[[int], None]:
    import wsgi_overhead as w

    from pulsegate.engine import PulseGate
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    if flask:
        app = w.flask_app()
        if stack == "pulsegate":
            from pulsegate.flask import PulseGate as FlaskPulseGate
            FlaskPulseGate(app)
        wsgi = w.otel_flask() if stack == "otel-flask" else \
            w.otel(app.wsgi_app) if stack == "otel" else app.wsgi_app
    else:
        wsgi = {"bare": w.raw_app, "otel": w.otel(w.raw_app)}.get(stack) or \
            PulseGateWSGIMiddleware(w.raw_app, gate=PulseGate())
    return _wsgi_driver(wsgi, "/hello/u{}")


def _django(stack: str) -> Callable[[int], None]:
    import django_overhead as d

    handler = {"bare": lambda: d.handler([]), "otel": d.otel_handler}.get(stack) or (
        lambda: d.handler(["pulsegate.django.PulseGateMiddleware"]))
    return _wsgi_driver(handler()[0], "/hello/u{}/")


def _engine(stack: str) -> Callable[[int], None]:
    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    gate = PulseGate() if stack == "pulsegate" else None

    def drive(n: int) -> None:
        for i in range(n):
            info = RequestInfo("GET", f"/hello/u{i % 50}/", "/hello/<name>/")
            if gate is not None:
                ctx = gate.begin(info)
                assert ctx is not None
                gate.response_headers(ctx, 200)
                gate.finish(ctx)
    return drive


def driver(family: str, stack: str) -> Callable[[int], None]:
    """``drive(n)``: n requests through ``stack`` of ``family`` (``bytecodes.py`` too)."""
    sys.path.insert(0, str(HERE))
    if family in ("asgi", "asgi-full"):
        return _asgi(stack, family == "asgi-full")
    if family in ("wsgi", "flask"):
        return _wsgi(stack, family == "flask")
    if family == "django":
        return _django(stack)
    return _engine(stack)


#: ``--lines``: bytes copied before each counted request, four times the simulated last
#: level (:data:`CACHES`): nothing of the request before stays cached.
EVICT = 4 << 20


def child(family: str, stack: str, n: int, warm: int = 0, cold: int = 0) -> None:
    """``warm`` requests, then ``n`` inside a window :func:`window_counts` reads (each
    after :data:`EVICT` bytes of memory traffic when ``cold``)."""
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    drive = driver(family, stack)
    drive(warm)
    if warm:
        # The gates' periodic jobs run every 0.5 s of wall time: under valgrind they land
        # in the window as often as the machine's load slows it. Parked for the window
        # (the request path is what is counted), as real_pages.py does.
        from pulsegate import scheduler
        for each in list(scheduler._ALL):
            each.tick = 1e6
        time.sleep(1.0)
    # Everything built so far (modules, the app, the stack) goes to the permanent
    # generation: a full collection then walks only what requests left behind, so the
    # count does not swing by whether one more of them falls inside the window.
    gc.freeze()
    if cold:
        traffic = bytearray(EVICT)
        os.getppid()
        for _ in range(n):
            bytes(traffic)  # reads and writes 2 x EVICT bytes, in C
            drive(1)
        os.getppid()
        return
    os.getppid()
    drive(n)
    os.getppid()


def count(family: str, stack: str, n: int) -> int:
    found = re.search(r"Collected : (\d+)", run_valgrind(
        [__file__, "--child", family, stack, str(n)],
        ["--tool=callgrind", "--callgrind-out-file=/dev/null"]))
    if found is None:
        raise SystemExit(f"callgrind counted nothing for {family}/{stack}")
    return int(found.group(1))


#: ``--misses``: the level-1 misses a request adds (lines the CPU fetches from its L2).
L1_MISSES = ("i1_misses", "d1_read_misses", "d1_write_misses")


def misses(family: str, stack: str, n: int, cold: bool = False) -> dict[str, float]:
    """Instructions and cache misses per request of ``stack`` (:func:`window_counts`, one
    run: :data:`WARMUP` requests, then ``n`` counted, each after :data:`EVICT` bytes of
    memory traffic when ``cold``)."""
    out = (f"{tempfile.gettempdir()}/instructions.{os.getpid()}.{family}.{stack}"
           f"{'.cold' if cold else ''}.out")
    counts = window_counts([__file__, "--child", family, stack, str(n), str(WARMUP),
                            str(int(cold))], out)
    return {name: value / n for name, value in counts.items()}


#: This machine's caches as valgrind simulates them (AMD EPYC, Zen 4): 32 KiB 8-way level-1
#: instruction and data caches, and its 1 MiB 8-way L2 per core as the "last level"
#: (LL): a page's own work evicts pulsegate's code and objects from L2, and an L2 miss
#: is what costs tens of cycles. The shared 32 MiB L3 is not modelled.
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,8,64"]
#: callgrind's cache-simulation events -> the names :func:`window_counts` gives them.
EVENTS = {"Ir": "instructions", "I1mr": "i1_misses", "D1mr": "d1_read_misses",
          "D1mw": "d1_write_misses", "ILmr": "lli_misses", "DLmr": "lld_read_misses",
          "DLmw": "lld_write_misses"}
#: ``--lines``: the last-level misses, which a cold request has once for each line it touches.
LL_MISSES = ("lli_misses", "lld_read_misses", "lld_write_misses")


def run_valgrind(argv: list[str], tool: list[str]) -> str:
    """Run ``python argv...`` under valgrind ``tool``; its report (stderr)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    # Address-space randomisation moves objects, and with them collisions in the
    # interpreter's caches: about ±1 k instructions per request from run to run. Off.
    fixed = ["setarch", "-R"] if shutil.which("setarch") else []
    proc = subprocess.run([*fixed, "valgrind", *tool, sys.executable, *argv],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"valgrind failed for {argv}: {proc.stderr[-2000:]}")
    return proc.stderr


def window_counts(argv: list[str], out: str) -> dict[str, int]:
    """Instructions and cache misses (:data:`CACHES`) of ``python argv...`` between its
    first two calls of ``os.getppid()`` (the window it marks), counted by callgrind with
    its cache simulation; the window's profile stays in ``out.2`` (``callgrind_annotate
    out.2`` names the C functions)."""
    for old in Path(out).parent.glob(Path(out).name + "*"):
        old.unlink()
    run_valgrind(argv, ["--tool=callgrind", "--cache-sim=yes", *CACHES,
                        "--dump-before=os_getppid*", f"--callgrind-out-file={out}"])
    text = Path(out + ".2").read_text()
    names = re.search(r"^events: (.+)$", text, re.M)
    totals = re.search(r"^totals: (.+)$", text, re.M)
    if names is None or totals is None:
        raise SystemExit(f"no window in {out}.2")
    found = dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=False))
    return {name: found.get(event, 0) for event, name in EVENTS.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7]))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--misses", action="store_true",
                    help="also count level-1 cache misses (valgrind's cache simulation)")
    ap.add_argument("--lines", action="store_true",
                    help="with --misses: also count the distinct cache lines a request "
                         "touches (a second run, each request after 4 MiB of traffic)")
    ap.add_argument("family", nargs="*", help=f"any of {', '.join(FAMILIES)}")
    args = ap.parse_args()
    unknown = set(args.family) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown family {', '.join(sorted(unknown))}; choose from {', '.join(FAMILIES)}")
    if args.lines and not args.misses:
        ap.error("--lines counts with the cache simulation: add --misses")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    families = args.family or [f for f in FAMILIES if f != "engine"]
    stacks_of = {f: [s for s in STACKS + MORE_STACKS.get(f, ()) if not (f == "engine" and s == "otel")]
                 for f in families}
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        if args.misses:
            pairs = [(f, s) for f in families for s in stacks_of[f]]
            found = pool.map(lambda job: misses(job[0], job[1], args.requests), pairs)
            each = dict(zip(pairs, found, strict=True))
            if args.lines:
                cold = pool.map(lambda job: misses(job[0], job[1], args.requests, True), pairs)
                for pair, cold_counts in zip(pairs, cold, strict=True):
                    each[pair]["lines"] = sum(cold_counts[e] for e in LL_MISSES)
        else:
            jobs = [(f, s, n) for f, s in ((f, s) for f in families for s in stacks_of[f])
                    for n in (WARMUP, WARMUP + args.requests)]
            counts = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
            each = {(f, s): {"instructions": (counts[(f, s, WARMUP + args.requests)]
                                              - counts[(f, s, WARMUP)]) / args.requests}
                    for f in families for s in stacks_of[f]}
    print(f"instructions per request ({args.requests} requests after {WARMUP} warm-up)"
          + (", and level-1 misses (I1 + D1 read + D1 write)" if args.misses else ""))
    for family in families:
        stacks = stacks_of[family]
        per = {s: each[(family, s)]["instructions"] for s in stacks}
        print(f"\n{family}")
        for stack, value in per.items():
            line = f"  {stack:10s} {value:12,.0f} {value - per['bare']:+12,.0f}"
            if args.misses:
                mine, bare = each[(family, stack)], each[(family, "bare")]
                total = sum(mine[e] for e in L1_MISSES)
                line += (f"   L1 misses {total:9,.0f} {total - sum(bare[e] for e in L1_MISSES):+8,.0f}"
                         " (I1 / D1 read / D1 write "
                         + " / ".join(f"{mine[e] - bare[e]:+,.0f}" for e in L1_MISSES) + ")")
            if "lines" in each[(family, stack)]:
                touched = each[(family, stack)]["lines"] - each[(family, "bare")]["lines"]
                line += f"   lines touched {touched:+7,.0f}"
            print(line)
        if "otel" in per:
            added_pg, added_otel = per["pulsegate"] - per["bare"], per["otel"] - per["bare"]
            verdict = "within" if added_pg <= 0.10 * added_otel else "OVER"
            print(f"  pulsegate adds {added_pg / added_otel * 100:.1f} % of what OpenTelemetry "
                  f"adds ({verdict} the 10 % budget)")
        if "otel-flask" in per:
            share = (per["pulsegate"] - per["bare"]) / (per["otel-flask"] - per["bare"])
            print(f"  and {share * 100:.1f} % of what OpenTelemetry's Flask instrumentation adds")
        if args.misses and "otel" in per:
            yardstick = "otel-flask" if "otel-flask" in per else "otel"
            added = {s: sum(each[(family, s)][e] - each[(family, "bare")][e] for e in L1_MISSES)
                     for s in stacks}
            print(f"  L1 misses: pulsegate adds {added['pulsegate'] / added[yardstick] * 100:.1f} %"
                  f" of what {yardstick} adds")
            if args.lines:
                footprint = {s: each[(family, s)]["lines"] - each[(family, "bare")]["lines"]
                             for s in stacks}
                print(f"  lines touched: pulsegate adds "
                      f"{footprint['pulsegate'] / footprint[yardstick] * 100:.1f}"
                      f" % of what {yardstick} adds")


if __name__ == "__main__":
    main()
