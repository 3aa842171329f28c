"""Cost of pulsegate's SQL hooks per statement, SQLAlchemy and Django, in one run.

100 000 simple SQLite statements (``SELECT ?`` with a varying parameter) through each
ORM's own execution path (SQLAlchemy ``Connection.exec_driver_sql``, Django
``CursorWrapper.execute``), three ways, interleaved round by round:

* ``bare``          -- no pulsegate hook installed;
* ``idle``          -- hooks installed, no request or capture (the hook's check only);
* ``instrumented``  -- hooks installed, inside a request context: every statement
                       recorded with its call site, and the request's detector run at
                       the end (fingerprints from the warm cache).

The statements are split into ``--rounds`` chunks; each chunk runs bare, idle and
instrumented back to back and the best chunk of each mode is kept, timed with the
thread's CPU clock so other processes on a shared machine do not count. Reported:
microseconds per statement and the cost added over bare. Budget: <= 3 us added per
statement (instrumented, analysis included).

    python benchmarks/query_overhead.py [-n 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pulsegate.engine import PulseGate
from pulsegate.queries.fingerprint import FingerprintCache
from pulsegate.records import RequestInfo

clock = time.thread_time

Mode = Callable[[int], float]


def _measure(n: int, rounds: int, bare: Mode, idle: Mode, inst: Mode) -> dict[str, float]:
    chunk = max(1, n // rounds)
    best = {"bare": float("inf"), "idle": float("inf"), "instrumented": float("inf")}
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("idle", idle), ("instrumented", inst)):
            best[name] = min(best[name], fn(chunk) / chunk * 1e6)
    return best


#: The fingerprint caches of the gates measured (the summary line adds them up).
CACHES: list[FingerprintCache] = []


def _in_request(gate: PulseGate, loop: Callable[[int], None], k: int) -> float:
    """Time ``loop(k)`` statements inside one request, its analysis and finish included;
    check every statement reached the request with its call site."""
    t = clock()
    ctx = gate.begin(RequestInfo("GET", "/bench", route="/bench"))
    assert ctx is not None
    loop(k)
    gate.response_headers(ctx, 200)
    gate.finish(ctx, 200)
    dt = clock() - t
    assert ctx.query_count == k and ctx.queries and ctx.queries[0].call_site
    return dt


def bench_sqlalchemy(n: int, rounds: int) -> dict[str, float]:
    from sqlalchemy import create_engine

    from pulsegate.sqlalchemy import instrument, uninstrument

    engine = create_engine("sqlite://")
    gate = PulseGate(max_queries_per_request=n)
    CACHES.append(gate.queries.detector.cache)  # each gate has its own
    conn = engine.connect()

    def loop(k: int) -> None:
        for i in range(k):
            conn.exec_driver_sql("SELECT ?", (i % 100,))

    def bare(k: int) -> float:
        uninstrument(engine)
        t = clock()
        loop(k)
        return clock() - t

    def idle(k: int) -> float:
        instrument(engine)
        t = clock()
        loop(k)
        return clock() - t

    def inst(k: int) -> float:
        instrument(engine)
        return _in_request(gate, loop, k)

    try:
        return _measure(n, rounds, bare, idle, inst)
    finally:
        conn.close()
        uninstrument(engine)


def bench_django(n: int, rounds: int) -> dict[str, float]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                                  "NAME": ":memory:"}},
                           INSTALLED_APPS=[], USE_TZ=True)
        django.setup()
    from django.db import connection

    from pulsegate.django.instrument import install, query_wrapper

    gate = PulseGate(max_queries_per_request=n)
    CACHES.append(gate.queries.detector.cache)  # each gate has its own
    connection.ensure_connection()
    cur = connection.cursor()

    def loop(k: int) -> None:
        for i in range(k):
            cur.execute("SELECT %s", (i % 100,))

    def bare(k: int) -> float:
        while query_wrapper in connection.execute_wrappers:
            connection.execute_wrappers.remove(query_wrapper)
        t = clock()
        loop(k)
        return clock() - t

    def idle(k: int) -> float:
        install()
        t = clock()
        loop(k)
        return clock() - t

    def inst(k: int) -> float:
        install()
        return _in_request(gate, loop, k)

    try:
        return _measure(n, rounds, bare, idle, inst)
    finally:
        cur.close()


def main() -> None:
    import logging

    logging.getLogger("pulsegate.queries").setLevel(logging.ERROR)  # the loop *is* an N+1
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100_000, help="statements per ORM and mode")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    print(f"{args.n} statements per ORM and mode, in {args.rounds} interleaved chunks; "
          f"best chunk, thread CPU time")
    for name, fn in (("SQLAlchemy", bench_sqlalchemy), ("Django", bench_django)):
        r = fn(args.n, args.rounds)
        added = r["instrumented"] - r["bare"]
        print(f"{name:10s} bare {r['bare']:6.2f}  idle {r['idle']:6.2f} (+{r['idle'] - r['bare']:.2f})"
              f"  instrumented {r['instrumented']:6.2f} us/stmt  added {added:5.2f} us/stmt "
              f"(budget 3: {'OK' if added <= 3 else 'OVER'})")
    analysed = 2 * args.rounds * max(1, args.n // args.rounds)
    hits, misses = sum(c.hits for c in CACHES), sum(c.misses for c in CACHES)
    print(f"fingerprint cache: {analysed} statements fingerprinted, {misses} "
          f"computed (misses), hit rate {1 - misses / analysed:.4%}; the gates' "
          f"LRUs saw {hits + misses} look-ups (one per distinct "
          f"text per request, the detector's per-run memo serves the repeats)")


if __name__ == "__main__":
    main()
