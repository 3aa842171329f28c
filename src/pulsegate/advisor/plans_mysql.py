"""MySQL and MariaDB plans, asked for with the server's own placeholders.

MySQL has no generic plan: it plans each execution with the values it is given. So the
advisor hands the redacted fingerprint to the **server** as a prepared statement and
binds the same neutral constant to every placeholder -- never a value of the
application::

    START TRANSACTION READ ONLY
    SET @pulsegate_v = '1', @pulsegate_n = 10
    PREPARE pulsegate_advice FROM 'EXPLAIN SELECT ... WHERE customer_id = ? LIMIT ?'
    EXECUTE pulsegate_advice USING @pulsegate_v, @pulsegate_n
    DEALLOCATE PREPARE pulsegate_advice
    ROLLBACK

``'1'`` is a string, which MySQL converts to the column's type (so an index on a number,
a string or a date column stays usable: an integer would disable an index on a string
column); ``NULL`` would make every ``col = ?`` an "Impossible WHERE" and hide the plan.
A ``LIMIT``/``OFFSET`` placeholder gets ``10``. Where ``col = '1'`` hits a primary or
unique key the server reads that one row while planning ("const table"): ``1`` is the
first value of an auto-increment key, so the row usually exists and the plan of the
other tables follows; when none matches the server reports "Impossible WHERE noticed
after reading const tables" and no access at all: that fingerprint gets no plan-based
finding (its key is indexed anyway, the other tables are not judged).

Limits: ``max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL, ms)
at the advisor's timeout; ``lock_wait_timeout`` and ``innodb_lock_wait_timeout`` are whole
seconds on these servers, so a metadata lock held by the application delays an EXPLAIN
by at most ``max(1, ceil(timeout))`` seconds. EXPLAIN does not run the statement.

MySQL plans carry no selectivity to judge a full scan by, so the catalog read adds one
bounded statement per table: ``COUNT(DISTINCT col)`` of each (non-blob) column over its
first 1 000 rows -- only counts come back. An equality keeps ``1/distinct`` of the rows
(independent columns multiply), a range alone a third; a scan keeping more than 20 % is
right and gets no index finding, as on PostgreSQL.

The plan is read from the classic table output (both servers print it the same way):
``type`` ``ALL`` (or MariaDB's ``hash_ALL``) is a full scan, and so is ``index`` (a walk
of a whole index) with ``Using where``; ``DEPENDENT SUBQUERY`` a
subquery run per outer row, ``Using filesort`` a sort no index gives. The catalog comes
from ``information_schema`` (``TABLE_ROWS`` is InnoDB's estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pulsegate.advisor.plans import PLAIN_NAME, OwnConnection, Plan, Scan, TableInfo
from pulsegate.advisor.shape import tokens

__all__ = ["MySQLExplainer", "placeholder_kinds", "read_mysql_plan"]

PREPARED = "pulsegate_advice"
METHOD = "PREPARE 'EXPLAIN ...?' + EXECUTE USING a neutral constant"


def placeholder_kinds(statement: str) -> list[str]:
    """For each ``?`` of the statement, the variable bound to it: ``@pulsegate_n`` after
    ``LIMIT``/``OFFSET`` (and ``LIMIT ?, ?``), ``@pulsegate_v`` elsewhere.

    >>> placeholder_kinds("select a from t where b = ? and c in ( ? ) limit ? , ?")
    ['@pulsegate_v', '@pulsegate_v', '@pulsegate_n', '@pulsegate_n']
    """
    out: list[str] = []
    toks = tokens(statement)
    for i, t in enumerate(toks):
        if t != "?":
            continue
        before = toks[i - 1].lower() if i else ""
        count = before in ("limit", "offset") or (
            before == "," and i >= 3 and toks[i - 2] == "?" and toks[i - 3].lower() == "limit")
        out.append("@pulsegate_n" if count else "@pulsegate_v")
    return out


class MySQLExplainer:
    dialect = "mysql"

    def __init__(self, connect: Callable[[], Any], timeout_ms: int = 250) -> None:
        self.conn = OwnConnection(connect)
        self.timeout_ms = int(timeout_ms)
        self.mariadb: bool | None = None
        self.tables: dict[str, TableInfo | None] = {}

    def _session(self, cur: Any) -> None:
        """Once per connection: which server, and its limits."""
        if self.mariadb is None:
            cur.execute("SELECT VERSION()")
            self.mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
        lock_s = max(1, math.ceil(self.timeout_ms / 1000))
        if self.mariadb:
            cur.execute(f"SET SESSION max_statement_time = {self.timeout_ms / 1000:.3f}")
        else:
            cur.execute(f"SET SESSION max_execution_time = {self.timeout_ms}")
        cur.execute(f"SET SESSION lock_wait_timeout = {lock_s}")
        cur.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_s}")

    def _run(self, sqls: list[tuple[str, tuple[Any, ...]]]) -> tuple[list[str], list[Any]]:
        """Run ``sqls`` in a read-only transaction, rolled back; the last result's column
        names and rows."""
        fresh = self.conn.conn is None
        conn = self.conn.get()
        names: list[str] = []
        rows: list[Any] = []
        try:
            cur = conn.cursor()
            if fresh:
                self._session(cur)
            cur.execute("START TRANSACTION READ ONLY")
            for sql, params in sqls:
                cur.execute(sql, params) if params else cur.execute(sql)
                if cur.description is not None:
                    names = [str(d[0]) for d in cur.description]
                    rows = list(cur.fetchall())
            return names, rows
        except Exception:
            self.conn.drop()  # a half-done PREPARE or transaction dies with it
            raise
        finally:
            if self.conn.conn is not None:
                try:
                    conn.rollback()
                except Exception:
                    self.conn.drop()

    def plan(self, statement: str) -> Plan | None:
        using = placeholder_kinds(statement)
        names, rows = self._run([
            ("SET @pulsegate_v = '1', @pulsegate_n = 10", ()),
            (f"PREPARE {PREPARED} FROM %s", ("EXPLAIN " + statement,)),
            (f"EXECUTE {PREPARED}" + (" USING " + ", ".join(using) if using else ""), ()),
            (f"DEALLOCATE PREPARE {PREPARED}", ())])
        return read_mysql_plan([dict(zip(names, r, strict=False)) for r in rows])

    def table(self, name: str) -> TableInfo | None:
        if name in self.tables:
            return self.tables[name]
        info = None
        if PLAIN_NAME.fullmatch(name):
            where = "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
            _n, cols = self._run([("SELECT COLUMN_NAME, DATA_TYPE FROM "
                                   f"information_schema.COLUMNS {where} "
                                   "ORDER BY ORDINAL_POSITION", (name,))])
            if cols:
                _n, found = self._run([(f"SELECT TABLE_ROWS FROM information_schema.TABLES "
                                        f"{where}", (name,))])
                _n, parts = self._run([("SELECT INDEX_NAME, COLUMN_NAME FROM "
                                        f"information_schema.STATISTICS {where} "
                                        "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (name,))])
                indexes: dict[str, list[str]] = {}
                for ix, col in parts:
                    indexes.setdefault(str(ix), []).append(str(col))
                rows = found[0][0] if found and found[0][0] is not None else None
                info = TableInfo(None if rows is None else float(rows),
                                 [str(c[0]) for c in cols], list(indexes.values()),
                                 indexes.get("PRIMARY", []),
                                 self._distinct(name, [str(c[0]) for c in cols
                                                       if str(c[1]).lower() in _SAMPLED]))
        self.tables[name] = info
        return info

    def _distinct(self, table: str, columns: list[str]) -> dict[str, float]:
        """Distinct values of each column among the first :data:`SAMPLE_ROWS` rows (one
        bounded statement of our own; only the counts come back): MySQL's stand-in for
        the planner statistics PostgreSQL's plans carry. Empty when it fails."""
        names = [c for c in columns if PLAIN_NAME.fullmatch(c)][:MAX_SAMPLED_COLUMNS]
        if not names:
            return {}
        counts = ", ".join(f"COUNT(DISTINCT `{c}`)" for c in names)
        try:
            _n, got = self._run([(f"SELECT {counts} FROM (SELECT "
                                  f"{', '.join(f'`{c}`' for c in names)} FROM `{table}` "
                                  f"LIMIT {SAMPLE_ROWS}) s", ())])
        except Exception:
            return {}
        return {c: float(v) for c, v in zip(names, got[0], strict=False)} if got else {}

    def close(self) -> None:
        self.conn.drop()


#: rows sampled per table for distinct counts, and at most this many columns
SAMPLE_ROWS = 1000
MAX_SAMPLED_COLUMNS = 64
#: column types whose distinct values are counted (not blobs, texts, JSON, geometry)
_SAMPLED = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint",
                      "decimal", "numeric", "float", "double", "bit", "date", "datetime",
                      "timestamp", "time", "year", "char", "varchar", "binary",
                      "varbinary", "enum", "set", "uuid"})


_FULL = ("ALL", "hash_ALL")


def read_mysql_plan(rows: list[dict[str, Any]]) -> Plan:
    """A :class:`Plan` from ``EXPLAIN``'s table output (one dict per row)."""
    plan = Plan("mysql", method=METHOD)
    lines: list[str] = []
    for row in rows:
        table = row.get("table")
        kind = str(row.get("type") or "")
        extra = str(row.get("Extra") or "")
        select = str(row.get("select_type") or "")
        lines.append(f"{select} {table or '-'} type={kind or '-'} key={row.get('key') or '-'} "
                     f"rows={row.get('rows') or '-'}{' ' + extra if extra else ''}")
        if select.startswith("DEPENDENT"):
            plan.correlated += 1
        if "Using filesort" in extra:
            plan.sort_for_limit = True
        if not table or str(table).startswith("<"):
            continue  # no table access, or a derived table / materialised subquery
        rows_out = row.get("rows")
        # type "index" walks a whole index; with "Using where" each row is filtered
        # after it (an ORDER BY ... LIMIT served by another index): a full scan as
        # far as the filter's columns go
        full = kind in _FULL or (kind == "index" and "Using where" in extra)
        plan.scans.append(Scan(str(table), str(table),
                               "full" if full else "index" if kind else "other",
                               None if rows_out is None else float(rows_out),
                               f"{table}: type {kind} key {row.get('key') or 'none'}"
                               f"{', ' + extra if extra else ''}"))
    plan.text = "; ".join(lines)[:600]
    return plan
