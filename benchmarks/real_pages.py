"""What pulsegate costs on a real page, next to what OpenTelemetry costs on the same page,
in one run: Flask + SQLAlchemy + a Jinja template, Django ORM + a Django template,
FastAPI + SQLAlchemy through a service layer (pages in ``real_apps.py``). Each page lists
``rows`` posts and its template (or service) reads a lazily loaded author per row: an
N+1 of ``rows + 1`` statements; the ``clean`` page loads the authors with the list (one
statement).

For each framework three stacks (each its own app and database): ``bare``, ``otel`` (the
instrumentation an OpenTelemetry user installs: FlaskInstrumentor / DjangoInstrumentor /
the ASGI middleware, plus its SQLAlchemy instrumentation; OpenTelemetry has no Django ORM
instrumentation, only driver wrappers that patch the driver process-wide) and
``pulsegate`` (adapter + ORM hook, default configuration). The stacks alternate in
short rounds; what a stack adds is the median over rounds of its difference from
``bare`` in the same round (``_common.paired_added``), also per statement.

    .venv/bin/python benchmarks/real_pages.py [--requests 30] [--rounds 15] [--rows 1,10,50]
                                              [--families flask,django,fastapi]
    .venv/bin/python benchmarks/real_pages.py --bytecodes   # deterministic counts
    .venv/bin/python benchmarks/real_pages.py --profile 60 --families flask --rows 50
                                              # where pulsegate's CPU goes, in place
    .venv/bin/python benchmarks/real_pages.py --instructions [--requests 10]
                                              # instructions and cache misses (valgrind)

``--bytecodes`` counts Python bytecodes per request instead of timing (as ``bytecodes.py``
does, in every thread; deterministic, so a change shows without noise); ``--top N`` names the
functions pulsegate adds the most bytecodes in.

``--instructions`` runs each page of the bare and the pulsegate stack in a process of its
own under valgrind's callgrind with its cache simulation (this machine's caches:
``instructions.CACHES``), counting only the requests after a warm-up, and prints what
pulsegate adds per statement: instructions (Ir), and misses in the level-1 instruction
cache (I1), the level-1 data cache (D1, reads and writes) and the 1 MiB L2 (LL).
Deterministic, and unaffected by other processes (the cache is simulated), so it shows
what wall-clock time on a loaded machine cannot: whether a change makes pulsegate's
code and data colder or warmer on a page whose own work evicts them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_apps
from _common import freeze_setup, opcode_tracer, paired_added, start_response
from werkzeug.test import create_environ

STACKS = ("bare", "otel", "pulsegate")
URLS = {"flask": "/posts", "django": "/books/", "fastapi": "/api/v1/posts"}


def page_query(rows: int, clean: bool) -> str:
    return f"rows={rows}" + ("&eager=1" if clean else "")


def wsgi_driver(app: Any, url: str, query: str) -> Callable[[int], None]:
    base = create_environ(url, query_string=query)

    def drive(n: int) -> None:
        for _ in range(n):
            body = app(dict(base), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
    return drive


def asgi_driver(app: Any, url: str, query: str) -> Callable[[int], None]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": url, "raw_path": url.encode(),
             "query_string": query.encode(), "root_path": "", "headers": [
                 (b"host", b"localhost")], "client": ("127.0.0.1", 5000),
             "server": ("localhost", 80)}
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    def drive(n: int) -> None:
        loop.run_until_complete(many(n))
    return drive


def drivers(family: str, query: str) -> dict[str, Callable[[int], None]]:
    build = real_apps.FAMILIES[family]
    make = asgi_driver if family == "fastapi" else wsgi_driver
    return {stack: make(build(stack), URLS[family], query) for stack in STACKS}


def timed(drive: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    drive(n)
    return (time.perf_counter() - t0) / n * 1e6


def measure(family: str, rows: int, clean: bool, requests: int, rounds: int) -> dict[str, float]:
    runs = drivers(family, page_query(rows, clean))
    for drive in runs.values():
        drive(max(40, requests))  # warm caches and the endpoint model past its warm-up
    freeze_setup()
    results: dict[str, list[float]] = {s: [] for s in STACKS}
    for _ in range(rounds):
        for stack, drive in runs.items():
            results[stack].append(timed(drive, requests))
    added = paired_added(results, "bare")
    return {"bare": statistics.median(results["bare"]), "otel": added["otel"],
            "pulsegate": added["pulsegate"]}


_COUNTING: list[collections.Counter[str]] = []


def _trace(frame: FrameType, event: str, arg: Any) -> Any:
    """Counts bytecodes per function into ``_COUNTING[0]`` while it is set. Installed in
    every thread (FastAPI runs a sync route in a worker thread), before those start."""
    if not _COUNTING:
        return None
    return opcode_tracer(_COUNTING[0])(frame, event, arg)


def count(drive: Callable[[int], None], n: int) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    _COUNTING.append(counts)
    sys.settrace(_trace)
    try:
        drive(n)
    finally:
        sys.settrace(None)
        _COUNTING.clear()
    return counts


def bytecodes(family: str, rows: int, clean: bool, requests: int,
              top: int) -> dict[str, float]:
    threading.settrace(_trace)  # before the worker threads of the first request start
    runs = drivers(family, page_query(rows, clean))
    out: dict[str, float] = {}
    per_fn: dict[str, collections.Counter[str]] = {}
    for stack, drive in runs.items():
        drive(60)
        per_fn[stack] = count(drive, requests)
        out[stack] = sum(per_fn[stack].values()) / requests
    if top:
        diff = per_fn["pulsegate"].copy()
        diff.subtract(per_fn["bare"])
        for name, n in diff.most_common(top):
            print(f"      {n / requests:9.0f}  {name}")
    return {"bare": out["bare"], "otel": out["otel"] - out["bare"],
            "pulsegate": out["pulsegate"] - out["bare"]}


def profile(family: str, rows: int, clean: bool, seconds: float, top: int) -> None:
    """Where pulsegate's time goes on a real page, in place (its code as cold as the page
    leaves it): a CPU-time timer (``ITIMER_PROF``) samples the pulsegate stack; a sample
    counts for pulsegate when the innermost frame that is not the standard library's is
    pulsegate's, for every pulsegate function on that chain (inclusive). Python-level
    signals run between bytecodes, so a sample taken during a long C call (SQLite, a
    garbage collection) lands on the next bytecode: read the shares, not single lines."""
    import os
    import signal

    drive = drivers(family, page_query(rows, clean))["pulsegate"]
    drive(200)
    freeze_setup()
    ours = os.sep + os.path.join("src", "pulsegate") + os.sep
    stdlib = os.path.dirname(os.__file__) + os.sep
    counts: collections.Counter[str] = collections.Counter()
    total = [0]

    def sample(signum: int, frame: FrameType | None) -> None:
        total[0] += 1
        seen: set[str] = set()
        while frame is not None:
            name = frame.f_code.co_filename
            if ours in name:
                code = frame.f_code
                seen.add(f"{Path(name).name}:{getattr(code, 'co_qualname', code.co_name)}")
            elif not name.startswith(stdlib) or "-packages" in name:
                break  # the page's own code (app, framework, ORM)
            frame = frame.f_back
        if seen:
            counts["(pulsegate)"] += 1
            counts.update(seen)

    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    t0, n = time.thread_time(), 0
    while time.thread_time() - t0 < seconds:
        drive(20)
        n += 20
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
    per = (time.thread_time() - t0) / n * 1e6 / max(total[0], 1)
    print(f"{family} {'clean' if clean else 'n+1'} rows={rows}: {n} requests, "
          f"{total[0]} samples, {per * total[0]:.0f} µs CPU a request; pulsegate "
          f"{100 * counts['(pulsegate)'] / max(total[0], 1):.1f} % = "
          f"{per * counts['(pulsegate)']:.1f} µs (inclusive, by function):")
    for name, k in counts.most_common(top + 1)[1:]:
        print(f"  {per * k:7.1f} µs  {name}")


#: Requests every ``--instructions`` child serves before the counted ones.
WARM = 40


def child(family: str, stack: str, rows: int, clean: bool, n: int) -> None:
    """One stack of one page alone in this process, ``WARM + n`` requests."""
    logging.disable(logging.WARNING)
    if family == "django":
        real_apps.django_setup_db()
    make = asgi_driver if family == "fastapi" else wsgi_driver
    app = real_apps.FAMILIES[family](stack)
    # The endpoint's model warms up on the one-row page (the same route, a fraction of
    # the instructions valgrind has to run), then the page itself settles its caches.
    make(app, URLS[family], page_query(1, False))(WARM)
    drive = make(app, URLS[family], page_query(rows, clean))
    drive(3)
    # The gate's periodic jobs run on their own thread every 0.5 s of wall time: under
    # valgrind (≈ 50x slower) they would land in every request instead of once in ≈ 70
    # of a 7 ms page. Parked for the counted window (the request path is what is
    # counted): the thread's current wait ends, the next one outlasts the run.
    from pulsegate import scheduler
    for each in list(scheduler._ALL):
        each.tick = 1e6
    time.sleep(1.0)
    freeze_setup()
    os.getppid()  # marks the counted window (instructions.window_counts)
    if n:
        drive(n)
    os.getppid()


#: Modules compiled once, not in every valgrind run (which would count the compiler).
_WRITE_BYTECODE = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def count_instructions(family: str, rows: int, clean: bool, requests: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from instructions import EVENTS, window_counts

    stacks = ("bare", "pulsegate")
    page = f"{rows}{'-clean' if clean else ''}"
    argv = {stack: [__file__, "--child", family, stack, str(rows), str(int(clean)),
                    str(requests)] for stack in stacks}
    for stack in stacks:  # compile and cache every module first, not under valgrind
        subprocess.run([sys.executable, *argv[stack][:-1], "0"], check=True, env=_WRITE_BYTECODE)
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(stacks, pool.map(lambda stack: window_counts(
            argv[stack], f"{tempfile.gettempdir()}/real_pages.{family}.{page}.{stack}.out"),
            stacks), strict=True))
    per = {stack: {k: runs[stack][k] / requests for k in EVENTS.values()} for stack in stacks}
    statements = 1 if clean else rows + 1
    short = {"instructions": "Ir", "i1_misses": "I1", "d1_read_misses": "D1r",
             "d1_write_misses": "D1w", "lli_misses": "LLi", "lld_read_misses": "LLdr",
             "lld_write_misses": "LLdw"}
    bare = per["bare"]
    added = {k: per["pulsegate"][k] - bare[k] for k in bare}
    print(f"{family:8} {'clean' if clean else 'n+1':6} {statements:4} | bare/request "
          + " ".join(f"{short[k]} {v:,.0f}" for k, v in bare.items())
          + "\n" + " " * 20 + "| pulsegate/statement "
          + " ".join(f"{short[k]} {v / statements:+,.1f}" for k, v in added.items())
          + f" ({100 * added['instructions'] / bare['instructions']:.1f} % of bare Ir)",
          flush=True)


def report(family: str, rows: int, clean: bool, r: dict[str, float], unit: str) -> None:
    statements = 1 if clean else rows + 1
    share = 100 * r["pulsegate"] / r["otel"] if r["otel"] > 0 else float("nan")
    print(f"{family:8} {'clean' if clean else 'n+1':6} {statements:4} | bare {r['bare']:10.1f}"
          f" | otel +{r['otel']:9.1f} ({r['otel'] / statements:7.1f}/stmt)"
          f" | pulsegate +{r['pulsegate']:8.1f} ({r['pulsegate'] / statements:6.1f}/stmt,"
          f" {100 * r['pulsegate'] / r['bare']:5.1f} % of bare, {share:5.1f} % of otel) {unit}",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]), argv[4] == "1", int(argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=30, help="per stack and round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--rows", default="1,10,50", help="N+1 pages: rows listed")
    ap.add_argument("--families", default="flask,django,fastapi")
    ap.add_argument("--bytecodes", action="store_true", help="count bytecodes, not time")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions and cache misses under valgrind, not time")
    ap.add_argument("--top", type=int, default=0,
                    help="with --bytecodes or --profile: dearest functions")
    ap.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                    help="sample the pulsegate stack for SECONDS of CPU a page, not time it")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # pulsegate logs the N+1 it finds; not measured here
    if not args.instructions:
        real_apps.django_setup_db()
    unit = "bytecodes/request" if args.bytecodes else "µs/request"
    pages = [(int(r), False) for r in args.rows.split(",")] + [(max(
        int(r) for r in args.rows.split(",")), True)]
    for family in args.families.split(","):
        for rows, clean in pages:
            if args.profile:
                profile(family, rows, clean, args.profile, args.top or 25)
                continue
            if args.instructions:
                if not clean:  # per statement: the N+1 pages
                    count_instructions(family, rows, False, args.requests)
                continue
            if args.bytecodes:
                r = bytecodes(family, rows, clean, args.requests, args.top)
            else:
                r = measure(family, rows, clean, args.requests, args.rounds)
            report(family, rows, clean, r, unit)


if __name__ == "__main__":
    main()
