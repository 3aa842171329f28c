"""Cost of pulsegate's SQL hooks per statement, SQLAlchemy and Django, in one run.

100 000 simple SQLite statements (``SELECT ?`` with a varying parameter) each way:

* bare           -- no pulsegate hooks installed;
* instrumented   -- hooks installed, inside a request context (events recorded, call site
                    walked) and the request's detector run at the end (fingerprints
                    from the warm cache);

reported as microseconds per statement (best of ``--rounds``) and the added cost.
Budget: <= 3 us added per statement. Usage: python benchmarks/query_overhead.py [-n N]
"""

from __future__ import annotations

import argparse
import time


def bench_sqlalchemy(n: int, rounds: int) -> tuple[float, float]:
    from sqlalchemy import create_engine

    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo
    from pulsegate.sqlalchemy import instrument, uninstrument

    engine = create_engine("sqlite://")
    gate = PulseGate(max_queries_per_request=n)

    def run(conn: object) -> float:
        t = time.perf_counter()
        for i in range(n):
            conn.exec_driver_sql("SELECT ?", (i % 100,))  # type: ignore[attr-defined]
        return time.perf_counter() - t

    bare = inst = float("inf")
    with engine.connect() as conn:
        for _ in range(rounds):
            uninstrument(engine)
            bare = min(bare, run(conn))
            instrument(engine)
            ctx = gate.begin(RequestInfo("GET", "/bench", route="/bench"))
            assert ctx is not None
            t = time.perf_counter()
            run(conn)
            gate.response_headers(ctx, 200)
            gate.finish(ctx, 200)
            inst = min(inst, time.perf_counter() - t)
            assert ctx.query_count == n
    uninstrument(engine)
    return bare / n * 1e6, inst / n * 1e6


def bench_django(n: int, rounds: int) -> tuple[float, float]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                                  "NAME": ":memory:"}},
                           INSTALLED_APPS=[], USE_TZ=True)
        django.setup()
    from django.db import connection

    from pulsegate.django.instrument import install, query_wrapper
    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    gate = PulseGate(max_queries_per_request=n)

    def run() -> float:
        with connection.cursor() as cur:
            t = time.perf_counter()
            for i in range(n):
                cur.execute("SELECT %s", (i % 100,))
            return time.perf_counter() - t

    bare = inst = float("inf")
    connection.ensure_connection()
    for _ in range(rounds):
        while query_wrapper in connection.execute_wrappers:
            connection.execute_wrappers.remove(query_wrapper)
        bare = min(bare, run())
        install()
        ctx = gate.begin(RequestInfo("GET", "/bench", route="/bench"))
        assert ctx is not None
        t = time.perf_counter()
        run()
        gate.response_headers(ctx, 200)
        gate.finish(ctx, 200)
        inst = min(inst, time.perf_counter() - t)
        assert ctx.query_count == n
    return bare / n * 1e6, inst / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from pulsegate.queries.fingerprint import default_cache

    print(f"{args.n} statements per run, best of {args.rounds}")
    for name, fn in (("SQLAlchemy", bench_sqlalchemy), ("Django", bench_django)):
        bare, inst = fn(args.n, args.rounds)
        print(f"{name:10s} bare {bare:6.2f} us/stmt   instrumented {inst:6.2f} us/stmt   "
              f"added {inst - bare:5.2f} us/stmt ({inst / bare:.2f}x)   budget 3 us: "
              f"{'OK' if inst - bare <= 3 else 'OVER'}")
    print(f"fingerprint cache: {default_cache.hits} hits, {default_cache.misses} misses, "
          f"hit rate {default_cache.hit_rate:.4%}")


if __name__ == "__main__":
    main()
