"""Asking a database for its plan without running the statement, and reading it.

Each explainer owns **its own connection**, made by the ``connect`` callable it is given
(never the application's: it is opened on the scheduler thread, so no EXPLAIN ever runs
inside an application transaction), and sends only the redacted fingerprint with
placeholders -- no real parameter value (``NULL``; on MySQL a neutral constant).

* **PostgreSQL**, in a ``READ ONLY`` transaction with ``statement_timeout`` and
  ``lock_timeout`` set locally, rolled back afterwards:
  16+: ``EXPLAIN (GENERIC_PLAN, FORMAT JSON) <statement with $n>``;
  12-15: ``SET LOCAL plan_cache_mode = force_generic_plan``, ``PREPARE`` the statement,
  ``EXPLAIN (FORMAT JSON) EXECUTE`` it with ``NULL`` for every parameter (the forced
  generic plan is built without looking at them: the same plan ``GENERIC_PLAN`` gives),
  ``DEALLOCATE``; older servers: no plan (the advice stays plan-free).
* **SQLite**: ``EXPLAIN QUERY PLAN`` with ``NULL`` bound to each ``?``, cut off by a
  progress handler at the timeout.
* **MySQL / MariaDB** (:mod:`pulsegate.advisor.plans_mysql`): the server's own
  placeholders (``PREPARE ... FROM 'EXPLAIN ...?...'``, ``EXECUTE ... USING``) with a
  neutral constant, since MySQL has no generic plan.

Neither form executes the statement. Catalog look-ups (row estimates, columns, the
column order of existing indexes) go through the same connection; table names are put in
only when they are plain identifiers (no quoting games).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Explainer", "OwnConnection", "Plan", "PostgresExplainer", "SQLiteExplainer", "Scan",
           "TableInfo"]

PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
PREPARED = "pulsegate_advice"


@dataclass
class Scan:
    """One table access in a plan: ``full`` (sequential / SCAN), ``index`` or
    ``auto_index`` (SQLite built a temporary index: one was missing)."""

    table: str
    alias: str
    kind: str
    rows: float | None = None  # rows the planner expects out of it
    detail: str = ""
    #: a condition checked row by row after the access (PostgreSQL's ``Filter``): on an
    #: index scan, columns the index used does not serve
    filter: str = ""


@dataclass
class Plan:
    dialect: str
    scans: list[Scan] = field(default_factory=list)
    #: subqueries the plan runs once per outer row
    correlated: int = 0
    #: a sort of the whole input under a LIMIT (no index gives the order)
    sort_for_limit: bool = False
    sort_keys: list[str] = field(default_factory=list)
    #: the plan as the database printed it, cut (the evidence shown)
    text: str = ""
    method: str = ""


@dataclass
class TableInfo:
    rows: float | None
    columns: list[str]
    indexes: list[list[str]]  # each index's columns in order
    #: the primary key's columns, where a secondary index holds them after its own
    #: (InnoDB): an index need not name them to give their order
    clustered_key: list[str] = field(default_factory=list)
    #: column -> distinct values in a bounded sample of rows (MySQL, whose plans carry
    #: no selectivity); empty where the plan's own estimate is used
    distinct: dict[str, float] = field(default_factory=dict)

    def leading(self) -> set[str]:
        return {ix[0] for ix in self.indexes if ix}


class Explainer(Protocol):
    dialect: str

    def plan(self, statement: str) -> Plan | None: ...

    def table(self, name: str) -> TableInfo | None: ...

    def close(self) -> None: ...


class OwnConnection:
    """The explainer's own DB-API connection, made on first use and again after a
    failure."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect = connect
        self.conn: Any = None

    def get(self) -> Any:
        if self.conn is None:
            self.conn = self.connect()
        return self.conn

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


class PostgresExplainer:
    dialect = "postgresql"

    def __init__(self, connect: Callable[[], Any], timeout_ms: int = 250) -> None:
        def transactional() -> Any:
            conn = connect()
            if getattr(conn, "autocommit", False):
                conn.autocommit = False  # SET LOCAL needs a transaction to be local to
            return conn

        self.conn = OwnConnection(transactional)
        self.timeout_ms = int(timeout_ms)
        self.version: int | None = None
        self.tables: dict[str, TableInfo | None] = {}

    def _run(self, sqls: list[str], fetch_last: bool = True) -> Any:
        conn = self.conn.get()
        try:
            cur = conn.cursor()
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {self.timeout_ms}")
            cur.execute(f"SET LOCAL lock_timeout = {self.timeout_ms}")
            rows = None
            for sql in sqls:
                cur.execute(sql)
                if cur.description is not None:
                    rows = cur.fetchall()
            return rows
        except Exception:
            try:
                conn.rollback()
            except Exception:
                self.conn.drop()
            raise
        finally:
            try:
                conn.rollback()
            except Exception:
                self.conn.drop()

    def server_version(self) -> int:
        if self.version is None:
            rows = self._run(["SHOW server_version_num"])
            self.version = int(rows[0][0])
        return self.version

    def plan(self, statement: str) -> Plan | None:
        version = self.server_version()
        if version >= 160000:
            rows = self._run([f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {statement}"])
            method = "EXPLAIN (GENERIC_PLAN)"
        elif version >= 120000:
            params = max((int(m) for m in re.findall(r"\$(\d+)", statement)), default=0)
            args = f"({', '.join(['NULL'] * params)})" if params else ""
            try:
                rows = self._run(["SET LOCAL plan_cache_mode = force_generic_plan",
                                  f"PREPARE {PREPARED} AS {statement}",
                                  f"EXPLAIN (FORMAT JSON) EXECUTE {PREPARED}{args}"])
            finally:
                self._deallocate()
            method = "PREPARE + force_generic_plan + EXPLAIN EXECUTE (NULLs)"
        else:
            return None
        doc = rows[0][0]
        if isinstance(doc, str):
            doc = json.loads(doc)
        return read_postgres_plan(doc, method)

    def _deallocate(self) -> None:
        conn = self.conn.conn
        if conn is None:
            return
        try:
            cur = conn.cursor()
            cur.execute(f"DEALLOCATE {PREPARED}")
        except Exception:
            pass
        try:
            conn.rollback()
        except Exception:
            self.conn.drop()

    def table(self, name: str) -> TableInfo | None:
        if name in self.tables:
            return self.tables[name]
        info = None
        if PLAIN_NAME.fullmatch(name):
            reg = f"to_regclass('{name}')"
            rows = self._run([
                f"SELECT c.reltuples, (SELECT array_agg(a.attname::text ORDER BY a.attnum) "
                f"FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT "
                f"a.attisdropped), (SELECT json_agg((SELECT json_agg(a.attname ORDER BY "
                f"k.ord) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord) JOIN "
                f"pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum)) FROM "
                f"pg_index x WHERE x.indrelid = c.oid) FROM pg_class c WHERE c.oid = {reg}"])
            if rows:
                reltuples, cols, idx = rows[0]
                if isinstance(idx, str):
                    idx = json.loads(idx)
                info = TableInfo(None if reltuples is None or reltuples < 0 else float(reltuples),
                                 list(cols or []), [list(i or []) for i in (idx or [])])
        self.tables[name] = info
        return info

    def close(self) -> None:
        self.conn.drop()


def _pg_nodes(node: dict[str, Any], parent: dict[str, Any] | None = None
              ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    yield node, parent
    for child in node.get("Plans", ()) or ():
        yield from _pg_nodes(child, node)


def read_postgres_plan(doc: Any, method: str = "") -> Plan:
    """A :class:`Plan` from PostgreSQL's ``FORMAT JSON`` output."""
    root = doc[0]["Plan"] if isinstance(doc, list) else doc["Plan"]
    plan = Plan("postgresql", method=method)
    lines: list[str] = []
    for node, parent in _pg_nodes(root):
        kind = str(node.get("Node Type", ""))
        rel = node.get("Relation Name")
        extra = node.get("Filter") or node.get("Index Cond") or node.get("Hash Cond") or ""
        name = str(node.get("Subplan Name") or "")
        lines.append(f"{'[' + name + '] ' if name else ''}{kind}{' on ' + rel if rel else ''}"
                     f"{' (' + str(extra) + ')' if extra else ''} rows={node.get('Plan Rows')}")
        if rel:
            scan_kind = "full" if kind == "Seq Scan" else "index" if "Index" in kind or \
                "Bitmap Heap" in kind else "other"
            plan.scans.append(Scan(str(rel), str(node.get("Alias") or rel), scan_kind,
                                   float(node.get("Plan Rows") or 0), str(extra),
                                   str(node.get("Filter") or "")))
        if node.get("Parent Relationship") == "SubPlan" and not name.startswith("hashed"):
            plan.correlated += 1
        if kind == "Sort" and parent is not None and parent.get("Node Type") == "Limit":
            plan.sort_for_limit = True
            plan.sort_keys = [str(k) for k in node.get("Sort Key") or ()]
        if kind == "Incremental Sort":
            continue
    plan.text = "; ".join(lines)[:600]
    return plan


class SQLiteExplainer:
    dialect = "sqlite"

    def __init__(self, connect: Callable[[], Any], timeout_ms: int = 250,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = OwnConnection(connect)
        self.timeout_ms = int(timeout_ms)
        self.clock = clock
        self.tables: dict[str, TableInfo | None] = {}

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn = self.conn.get()
        deadline = self.clock() + self.timeout_ms / 1000.0
        handler = getattr(conn, "set_progress_handler", None)
        if handler is not None:
            handler(lambda: 1 if self.clock() > deadline else 0, 1000)
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            if handler is not None and self.conn.conn is not None:
                handler(None, 0)

    def plan(self, statement: str) -> Plan | None:
        params = (None,) * statement.count("?")
        rows = self._rows(f"EXPLAIN QUERY PLAN {statement}", params)
        return read_sqlite_plan([str(r[-1]) for r in rows])

    def table(self, name: str) -> TableInfo | None:
        if name in self.tables:
            return self.tables[name]
        info = None
        if PLAIN_NAME.fullmatch(name):
            cols = [str(r[1]) for r in self._rows(f'PRAGMA table_info("{name}")')]
            if cols:
                indexes = []
                for r in self._rows(f'PRAGMA index_list("{name}")'):
                    ix = str(r[1])
                    if PLAIN_NAME.fullmatch(ix) or ix.startswith("sqlite_autoindex"):
                        info_rows = self._rows(f'PRAGMA index_info("{ix}")')
                        indexes.append([str(x[2]) for x in sorted(info_rows)])
                pk = [str(r[1]) for r in self._rows(f'PRAGMA table_info("{name}")')
                      if r[5] == 1]
                if pk:
                    indexes.append(pk)
                rows: float | None = None
                try:
                    got = self._rows(f'SELECT max(rowid) FROM "{name}"')
                    rows = float(got[0][0]) if got and got[0][0] is not None else 0.0
                except Exception:
                    rows = None
                info = TableInfo(rows, cols, indexes)
        self.tables[name] = info
        return info

    def close(self) -> None:
        self.conn.drop()


_SQLITE_ACCESS = re.compile(r"^(SCAN|SEARCH) (?:TABLE )?(\S+)(?: AS (\S+))?(.*)$")


def read_sqlite_plan(details: list[str]) -> Plan:
    """A :class:`Plan` from ``EXPLAIN QUERY PLAN`` rows' detail column."""
    plan = Plan("sqlite", method="EXPLAIN QUERY PLAN")
    for d in details:
        m = _SQLITE_ACCESS.match(d)
        if m:
            verb, table, alias, rest = m.groups()
            kind = "index"
            if "AUTOMATIC" in rest:
                kind = "auto_index"
            elif verb == "SCAN" and "COVERING INDEX" not in rest and "USING INDEX" not in rest:
                kind = "full"
            plan.scans.append(Scan(table, alias or table, kind, None, d))
        if d.startswith("CORRELATED"):
            plan.correlated += 1
        if "TEMP B-TREE FOR ORDER BY" in d or "TEMP B-TREE FOR RIGHT PART OF ORDER BY" in d:
            plan.sort_for_limit = True
    plan.text = "; ".join(details)[:600]
    return plan
