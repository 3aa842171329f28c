"""The query advisor on a generated schema with known missing indexes (PostgreSQL,
MariaDB).

    .venv/bin/python benchmarks/advisor_indexes.py [--seeds 1,2,3] [--rows 60000] [--url URL]

Without ``--url`` a throw-away server is started on loopback (``tests/services.py``):
the system's PostgreSQL (15 on Debian bookworm: generic plans through PREPARE +
force_generic_plan), with ``--server 16`` the pgserver wheel's PostgreSQL 16
(``EXPLAIN (GENERIC_PLAN)``), with ``--server mariadb`` Debian's MariaDB 10.11 (server
placeholders with a neutral constant: ``pulsegate.advisor.plans_mysql``).

Per seed: ``--tables`` tables of ``--rows`` rows, each with a primary key and eight
columns of known cardinality (``u*``: nearly unique, ``m*``: ~1 000 values, ``l*``: 3
values). Some high-cardinality columns get an index, the others are left without one:
that is the ground truth. The workload draws query templates over random columns:

* an equality filter, an equality plus a range, an equality with ORDER BY ... LIMIT, a
  join on a foreign-key column -- **needs an index** when its leading column is a
  high-cardinality column without one;
* the same on an indexed column, or on a 3-valued column (a scan is right there) --
  **needs none**.

The advisor sees each template's statements as a gate would (fingerprint, measured
time), explains them (generic plans) and suggests DDL. A suggestion is a true positive
when its leading column is the one the template needs; precision = correct suggestions
/ suggestions, recall = templates needing an index that got a correct one. The advisor's
thresholds were set before this benchmark existed and are not tuned on it.

Speed-up: every template is run ``--runs`` times with random real values before and
after applying the suggested DDL; the median time per template and the total are
reported, before / after. A second precision is *measured*: a suggestion counts as
useful when its statement ran at least 1.5x faster once the DDL was applied.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from pulsegate.advisor.query_advisor import QueryAdvisor  # noqa: E402
from pulsegate.queries.events import QueryEvent  # noqa: E402

COLUMNS = {"u1": 10**9, "u2": 10**9, "u3": 10**9, "m1": 1000, "m2": 1000, "m3": 1000,
           "l1": 3, "ts": 10**9}


class Database:
    """What differs between the servers: driver, row generator, hash, ANALYZE."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "mysql" if url.startswith(("mysql:", "mariadb:")) else "postgresql"

    def connect(self) -> Any:
        if self.dialect == "mysql":
            from pulsegate.advisor.connections import from_url
            conn = from_url(self.url)["connect"]()
            conn.autocommit(True)
            return conn
        import psycopg
        return psycopg.connect(self.url, autocommit=True)

    def run(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = conn.cursor()
        cur.execute(sql, params or None)
        return list(cur.fetchall()) if cur.description is not None else []

    def hashed(self, expr: str) -> str:
        """A non-negative pseudo-random integer of ``expr``."""
        return f"abs(hashint4({expr}))::bigint" if self.dialect == "postgresql" \
            else f"crc32({expr})"

    def series(self, rows: int) -> str:
        return (f"generate_series(1, {rows}) g" if self.dialect == "postgresql"
                else f"(SELECT seq AS g FROM seq_1_to_{rows}) s")

    def analyze(self, conn: Any, table: str) -> None:
        self.run(conn, f"ANALYZE {table}" if self.dialect == "postgresql"
                 else f"ANALYZE TABLE {table}")


@contextlib.contextmanager
def server(url: str | None, version: str) -> Iterator[str]:
    if url:
        yield url
        return
    from services import (  # type: ignore[import-not-found]
        mariadb_server,
        pgserver_bindir,
        postgres_server,
    )

    if version == "mariadb":
        with mariadb_server() as started:
            conn = Database(started).connect()
            Database(started).run(conn, "CREATE DATABASE IF NOT EXISTS bench")
            conn.close()
            yield started + "bench"
        return
    with postgres_server(pgserver_bindir() if version == "16" else None) as started:
        yield started


def build(db: Database, conn: Any, rng: random.Random, tables: int, rows: int
          ) -> dict[str, set[str]]:
    """Create the schema; returns table -> columns that have an index."""
    indexed: dict[str, set[str]] = {}
    for t in range(tables):
        name = f"t{t}"
        db.run(conn, f"DROP TABLE IF EXISTS {name} CASCADE")
        db.run(conn, f"CREATE TABLE {name} (id int PRIMARY KEY, parent int, "
               + ", ".join(f"{c} bigint" for c in COLUMNS) + ")")
        exprs = ", ".join(
            f"{db.hashed(f'g * {i + 7}')} % {card}" if card < 10**9 else
            db.hashed(f"g * {i + 11}") for i, (c, card) in enumerate(COLUMNS.items()))
        db.run(conn, f"INSERT INTO {name} SELECT g, 1 + {db.hashed('g')} % {rows}, {exprs} "
               f"FROM {db.series(rows)}")
        chosen = {c for c in ("u1", "u2", "u3", "m1", "m2", "m3", "ts") if rng.random() < 0.35}
        for c in sorted(chosen):
            db.run(conn, f"CREATE INDEX ix_{name}_{c}_given ON {name} ({c})")
        indexed[name] = chosen
        db.analyze(conn, name)
    return indexed


def templates(rng: random.Random, indexed: dict[str, set[str]], n: int
              ) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    """(sql with %s, the column an index must lead with or None, table, param kinds)."""
    out: list[tuple[str, str | None, str, tuple[str, ...]]] = []
    names = sorted(indexed)
    for _ in range(n):
        t = rng.choice(names)
        shape = rng.choice(["eq", "eq_range", "eq_order", "join", "low"])
        col = rng.choice(["u1", "u2", "u3", "m1", "m2", "m3"])
        need = None if col in indexed[t] else col
        kinds: tuple[str, ...]
        if shape == "eq":
            sql, kinds = f"SELECT id, ts FROM {t} WHERE {col} = %s", (col,)
        elif shape == "eq_range":
            sql, kinds = f"SELECT id FROM {t} WHERE {col} = %s AND ts > %s", (col, "ts")
        elif shape == "eq_order":
            sql, kinds = (f"SELECT id, ts FROM {t} WHERE {col} = %s ORDER BY ts DESC LIMIT 20",
                          (col,))
        elif shape == "join":
            other = rng.choice(names)
            sql = (f"SELECT a.id, b.ts FROM {other} a JOIN {t} b ON b.{col} = a.u1 "
                   f"WHERE a.id = %s")
            kinds = ("id",)
        else:
            sql, kinds, need = f"SELECT id FROM {t} WHERE l1 = %s", ("l1",), None
        out.append((sql, need, t, kinds))
    return out


def value(kind: str, rng: random.Random, rows: int) -> Any:
    if kind == "id":
        return rng.randrange(1, rows)
    if kind == "l1":
        return rng.randrange(3)
    if kind == "ts":
        return rng.randrange(2**31)
    card = COLUMNS[kind]
    return rng.randrange(card if card < 10**9 else 2**31)


def timed(db: Database, conn: Any, tpls: list[Any], rng: random.Random, rows: int,
          runs: int) -> list[float]:
    out = []
    for sql, _need, _t, kinds in tpls:
        times = []
        for _ in range(runs):
            params = tuple(value(k, rng, rows) for k in kinds)
            t0 = time.perf_counter()
            db.run(conn, sql, params)
            times.append((time.perf_counter() - t0) * 1000.0)
        out.append(statistics.median(times))
    return out


def run_seed(url: str, seed: int, tables: int, rows: int, n: int, runs: int) -> dict[str, Any]:
    db = Database(url)
    rng = random.Random(seed)
    conn = db.connect()
    indexed = build(db, conn, rng, tables, rows)
    tpls = templates(rng, indexed, n)
    before = timed(db, conn, tpls, random.Random(seed + 100), rows, runs)
    conn.close()
    # the advisor's own connection: a plain one (not in autocommit), as an app's would be
    from pulsegate.advisor.connections import from_url
    adv = QueryAdvisor(from_url(url)["connect"], db.dialect, explains_per_minute=600, top=n)
    for (sql, _need, _t, _k), ms in zip(tpls, before, strict=True):
        adv.offer("GET /bench", [QueryEvent(sql=sql, duration_ms=ms, db=db.dialect)])
    found = [f for f in adv.run(0.0) if f.kind in ("missing_index", "sort_without_index")]
    by_sql: dict[str, list[tuple[str | None, str]]] = {}
    for sql, need, t, _k in tpls:
        by_sql.setdefault(adv.costs.cache.get(sql, db.dialect).id, []).append((need, t))
    tp = fp = 0
    for f in found:
        wants = by_sql.get(f.fingerprint, [])
        lead = f.columns[0] if f.columns else None
        ok = any(need == lead and t == f.table for need, t in wants)
        tp += ok
        fp += not ok
    needing = [(sql, need, t) for sql, need, t, _k in tpls if need is not None]
    got = sum(1 for sql, need, t in needing if any(
        f.columns and f.columns[0] == need and f.table == t and
        f.fingerprint == adv.costs.cache.get(sql, db.dialect).id for f in found))
    ddl = sorted({f.fix for f in found})
    conn = db.connect()
    for d in ddl:
        try:
            db.run(conn, d)
        except Exception as exc:  # the same index suggested for two statements
            if "exist" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                raise
    for t in indexed:
        db.analyze(conn, t)
    after = timed(db, conn, tpls, random.Random(seed + 100), rows, runs)
    conn.close()
    adv.close()
    need_idx = [i for i, (_s, need, _t, _k) in enumerate(tpls) if need is not None]
    # measured: a suggestion is useful when its statement got >= 1.5x faster once applied
    speed = {adv.costs.cache.get(sql, db.dialect).id: before[i] / max(after[i], 1e-9)
             for i, (sql, _n, _t, _k) in enumerate(tpls)}
    useful = sum(1 for f in found if speed.get(f.fingerprint, 1.0) >= 1.5)
    return {"seed": seed, "templates": len(tpls), "needing": len(needing),
            "suggestions": len(found), "tp": tp, "fp": fp, "recall_hits": got,
            "precision": tp / len(found) if found else 1.0, "useful": useful,
            "recall": got / len(needing) if needing else 1.0, "ddl": len(ddl),
            "before_ms": sum(before), "after_ms": sum(after),
            "needing_before_ms": sum(before[i] for i in need_idx),
            "needing_after_ms": sum(after[i] for i in need_idx),
            "others_before_ms": sum(b for i, b in enumerate(before) if i not in need_idx),
            "others_after_ms": sum(a for i, a in enumerate(after) if i not in need_idx)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--tables", type=int, default=6)
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--templates", type=int, default=30)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--url", default=None)
    ap.add_argument("--server", choices=("system", "16", "mariadb"), default="system",
                    help="the system PostgreSQL (15 on Debian bookworm), 16 (pgserver) or "
                         "Debian's MariaDB")
    args = ap.parse_args(argv)
    with server(args.url, args.server) as url:
        rows = [run_seed(url, int(s), args.tables, args.rows, args.templates, args.runs)
                for s in args.seeds.split(",")]
    print(f"{'seed':>4} {'tpl':>4} {'need':>5} {'sugg':>5} {'prec':>6} {'useful':>6} {'recall':>7} "
          f"{'needing: before -> after ms':>30} {'speed-up':>9} {'others before -> after':>24}")
    for r in rows:
        speed = r["needing_before_ms"] / max(r["needing_after_ms"], 1e-9)
        print(f"{r['seed']:>4} {r['templates']:>4} {r['needing']:>5} {r['suggestions']:>5} "
              f"{r['precision']:>6.2f} {r['useful']:>6} {r['recall']:>7.2f} "
              f"{r['needing_before_ms']:>14.1f} -> {r['needing_after_ms']:>10.1f} "
              f"{speed:>8.1f}x {r['others_before_ms']:>10.1f} -> {r['others_after_ms']:>9.1f}")
    tp = sum(r["tp"] for r in rows)
    sugg = sum(r["suggestions"] for r in rows)
    need = sum(r["needing"] for r in rows)
    hits = sum(r["recall_hits"] for r in rows)
    useful = sum(r["useful"] for r in rows)
    print(f"\nall seeds: precision {tp}/{sugg} = {tp / max(sugg, 1):.2f} against the labels, "
          f"{useful}/{sugg} = {useful / max(sugg, 1):.2f} measured (>= 1.5x faster once "
          f"applied); recall {hits}/{need} = {hits / max(need, 1):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
