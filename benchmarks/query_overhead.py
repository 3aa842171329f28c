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
    python benchmarks/query_overhead.py --bytecodes [-n 2000] [--top 8]
    python benchmarks/query_overhead.py --steps [-n 40000] [--rounds 40]

``--bytecodes`` counts Python bytecodes per statement in each mode instead of timing
(deterministic on a loaded machine); ``--top`` names the functions pulsegate adds the
most in. ``--eager-reads`` times a relationship read with and without
``unused_eager_loads`` tracking.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import count_bytecodes

from pulsegate.engine import PulseGate
from pulsegate.queries.fingerprint import FingerprintCache
from pulsegate.records import RequestInfo

clock = time.thread_time

Mode = Callable[[int], float]


COUNT: dict[str, collections.Counter[str]] | None = None


def _measure(n: int, rounds: int, bare: Mode, idle: Mode, inst: Mode) -> dict[str, float]:
    if COUNT is not None:  # --bytecodes: one run per mode under the opcode tracer
        out = {}
        for name, fn in (("bare", bare), ("idle", idle), ("instrumented", inst)):
            fn(min(n, 200))  # warm: the call-site path, the fingerprint cache
            COUNT[name] = counts = count_bytecodes(fn, n)
            out[name] = sum(counts.values()) / n
        return out
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


def bench_eager_reads(n: int) -> str:
    """ns per read of an eagerly loaded relationship: untracked, then tracked
    (``unused_eager_loads``) inside a capture and outside any."""
    import timeit

    from sqlalchemy import ForeignKey, create_engine, select
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

    from pulsegate import capture
    from pulsegate.sqlalchemy import instrument

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = "parent"
        id: Mapped[int] = mapped_column(primary_key=True)
        children: Mapped[list[Child]] = relationship()

    class Child(Base):
        __tablename__ = "child"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    instrument(engine)
    with Session(engine) as s:
        s.add(Parent(id=1, children=[Child(id=1)]))
        s.commit()
        query = select(Parent).options(selectinload(Parent.children))
        p = s.scalars(query).one()

        def reads() -> None:
            for _ in range(n):
                _ = p.children

        def best() -> float:
            return min(timeit.repeat(reads, number=1, repeat=9)) / n * 1e9

        plain = best()
        with capture(unused_eager_loads=True):
            s.scalars(query).one()
            inside = best()
        outside = best()
    return (f"eager relationship read: untracked {plain:.0f} ns; tracked inside a capture "
            f"{inside:.0f} ns (+{inside - plain:.0f}), outside any {outside:.0f} ns "
            f"(+{outside - plain:.0f})")


def _step_hooks() -> dict[str, Callable[..., bool]]:
    """SQLAlchemy ``do_execute`` hooks that each do one more step of the real one
    (``pulsegate.sqlalchemy._do_execute``, whose private helpers they use): where a
    statement's microseconds go."""
    from pulsegate.context import query_sink
    from pulsegate.queries.events import new_event
    from pulsegate.sqlalchemy import _EXECUTE, _NO_LOAD, _do_execute, _orm_load

    def check(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        sink = query_sink.get()
        if sink is None or sink.finished:
            return False
        context.dialect.do_execute(cursor, statement, parameters, context)
        return True

    def clocks(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        sink = query_sink.get()
        if sink is None or sink.finished:
            return False
        t0 = time.perf_counter()
        context.dialect.do_execute(cursor, statement, parameters, context)
        time.perf_counter()
        return t0 > 0.0

    def orm_facts(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        sink = query_sink.get()
        if sink is None or sink.finished:
            return False
        t0 = time.perf_counter()
        context.dialect.do_execute(cursor, statement, parameters, context)
        time.perf_counter()
        if type(parameters) is tuple and context.execute_style is _EXECUTE:
            hash(parameters)
            _orm_load(context) or _NO_LOAD
        return t0 > 0.0

    def event(cursor: Any, statement: str, parameters: Any, context: Any,
              add: bool = False) -> bool:
        sink = query_sink.get()
        if sink is None or sink.finished:
            return False
        t0 = time.perf_counter()
        context.dialect.do_execute(cursor, statement, parameters, context)
        now = time.perf_counter()
        if type(parameters) is tuple and context.execute_style is _EXECUTE:
            phash = hash(parameters)
            rel, kind, source = _orm_load(context) or _NO_LOAD
            made = new_event((statement, (now - t0) * 1000.0, t0, len(parameters), phash,
                              None, None, rel, False, context.dialect.name, kind,
                              "sqlalchemy", source))
            if add:
                sink.add_query(made)
        return True

    def added(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        return event(cursor, statement, parameters, context, True)

    return {"sink check": check, "+ two clock reads": clocks,
            "+ parameter hash, ORM facts": orm_facts, "+ the event built": event,
            "+ sink.add_query": added, "the real hook (+ call site)": _do_execute}


def bench_steps(n: int, rounds: int) -> str:
    """µs a statement each step of the SQLAlchemy hook adds over bare, paired round by
    round (best round), the request's analysis included as in ``instrumented``."""
    from sqlalchemy import create_engine, event

    engine = create_engine("sqlite://")
    gate = PulseGate(max_queries_per_request=n)
    conn = engine.connect()
    chunk = max(1, n // rounds)

    def loop(k: int) -> None:
        for i in range(k):
            conn.exec_driver_sql("SELECT ?", (i % 100,))

    def run(hook: Callable[..., bool] | None) -> float:
        if hook is None:
            t = clock()
            loop(chunk)
            return clock() - t
        event.listen(engine, "do_execute", hook)
        try:
            return _in_request(gate, loop, chunk) if hook.__name__ == "_do_execute" \
                else _timed_request(gate, loop, chunk)
        finally:
            event.remove(engine, "do_execute", hook)

    hooks: dict[str, Callable[..., bool] | None] = {"bare": None, **_step_hooks()}
    best = dict.fromkeys(hooks, float("inf"))
    for _ in range(rounds):
        for name, hook in hooks.items():
            best[name] = min(best[name], run(hook) / chunk * 1e6)
    conn.close()
    return "\n".join(f"  {name:30s} {us:6.2f} us/stmt  added {us - best['bare']:+.2f}"
                     for name, us in best.items())


def _timed_request(gate: PulseGate, loop: Callable[[int], None], k: int) -> float:
    """``_in_request`` for a hook that records nothing (no call site to check)."""
    t = clock()
    ctx = gate.begin(RequestInfo("GET", "/bench", route="/bench"))
    loop(k)
    if ctx is not None:
        gate.response_headers(ctx, 200)
        gate.finish(ctx, 200)
    return clock() - t


def main() -> None:
    import logging

    global COUNT
    logging.getLogger("pulsegate.queries").setLevel(logging.ERROR)  # the loop *is* an N+1
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=None, help="statements per ORM and mode "
                    "(100 000 timed, 2 000 with --bytecodes)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--bytecodes", action="store_true", help="count bytecodes, not time")
    ap.add_argument("--top", type=int, default=0, help="with --bytecodes: dearest functions")
    ap.add_argument("--eager-reads", action="store_true",
                    help="also time reads of a tracked eager relationship")
    ap.add_argument("--steps", action="store_true",
                    help="time the SQLAlchemy hook step by step (where a statement's us go)")
    args = ap.parse_args()
    n = args.n if args.n is not None else (2000 if args.bytecodes else 100_000)

    if args.steps:
        rounds = args.rounds if args.rounds != 20 else 40
        print(f"SQLAlchemy hook step by step: {rounds} rounds of {max(1, (args.n or 40_000) // rounds)}"
              " statements in one request, best round, thread CPU time")
        print(bench_steps(args.n or 40_000, rounds))
        return
    if args.bytecodes:
        COUNT = {}
        print(f"{n} statements per ORM and mode; bytecodes per statement (deterministic)")
    else:
        print(f"{n} statements per ORM and mode, in {args.rounds} interleaved chunks; "
              f"best chunk, thread CPU time")
    unit = "bytecodes/stmt" if args.bytecodes else "us/stmt"
    for name, fn in (("SQLAlchemy", bench_sqlalchemy), ("Django", bench_django)):
        r = fn(n, args.rounds)
        added = r["instrumented"] - r["bare"]
        verdict = "" if args.bytecodes else f" (budget 3: {'OK' if added <= 3 else 'OVER'})"
        print(f"{name:10s} bare {r['bare']:6.2f}  idle {r['idle']:6.2f} (+{r['idle'] - r['bare']:.2f})"
              f"  instrumented {r['instrumented']:6.2f}  added {added:6.2f} {unit}{verdict}",
              flush=True)
        if COUNT is not None and args.top:
            diff = COUNT["instrumented"].copy()
            diff.subtract(COUNT["bare"])
            for fname, k in diff.most_common(args.top):
                print(f"      {k / n:7.1f}  {fname}")
    if not args.bytecodes:
        analysed = 2 * args.rounds * max(1, n // args.rounds)
        hits, misses = sum(c.hits for c in CACHES), sum(c.misses for c in CACHES)
        print(f"fingerprint cache: {analysed} statements fingerprinted, {misses} "
              f"computed (misses), hit rate {1 - misses / analysed:.4%}; the "
              f"gates' LRUs saw {hits + misses} look-ups (one per "
              f"distinct text per request, the detector's per-run memo serves the repeats)")
    if args.eager_reads:
        print(bench_eager_reads(200_000))


if __name__ == "__main__":
    main()
