r"""From a statement's shape, its plan and the catalog to findings with their fix.

Every finding carries the evidence it rests on, the exact DDL or rewrite, a confidence in
[0, 1] and an expected saving in milliseconds of database time per minute:

.. math:: saving = f \cdot u, \qquad u = \frac{\text{total ms of the fingerprint}}
   {\max(1,\ \text{minutes observed})}

with :math:`f` the share of the statement's time the fix removes, per rule:

=====================  =====================================================  ======
rule                   fires when                                             f
=====================  =====================================================  ======
missing_index          a full scan of a table of ``min_rows`` rows or more,   PG: 1 - selectivity
                       filtered (``=``/range/IN) or joined on columns no      (at most 0.95,
                       index leads with; SQLite also when it builds an        MySQL: sampled);
                       automatic index                                        SQLite 0.8 (=),
                                                                              0.5 (range)
sort_without_index     ORDER BY + LIMIT sorted in full (top-N sort /          0.8
                       temp B-tree) on such a table
correlated_subquery    the plan runs a subquery once per outer row            0.5
long_in_list           an IN list of ``in_list_min`` items or more            0.2
wide_select            every column of a ``wide_columns``-wide table read      0.2
=====================  =====================================================  ======

Confidence: missing index 0.9 when the planner's own estimate says the scan keeps at most
5 % of the rows (PostgreSQL; MySQL from sampled distinct counts, its plans carry no
selectivity), 0.7 up to 20 %, 0.7 for an equality on SQLite and 0.5 for a range; the
rest are fixed (sort 0.7, correlated 0.8, IN list 0.6, wide select 0.4: we do not see
which columns the code reads). The index's columns are ordered the classic way:
equality columns first, then the ORDER BY columns (when every filter is an equality),
else at most one range column last.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pulsegate.advisor.plans import Plan, TableInfo
from pulsegate.advisor.shape import Predicate, Shape

__all__ = ["Finding", "Thresholds", "findings"]


@dataclass
class Thresholds:
    min_rows: int = 1000
    in_list_min: int = 50
    wide_columns: int = 12


@dataclass
class Finding:
    kind: str
    fingerprint: str
    sql: str
    table: str | None
    evidence: str
    fix: str
    confidence: float
    saving_ms_per_min: float
    columns: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    plan_method: str = ""
    #: the share of the statement's time the fix removes (``f`` above)
    improvement: float = 0.0

    @property
    def roi(self) -> float:
        """Confidence x expected saving: ms of database time per minute, the unit the
        N+1 insights are ranked in."""
        return round(self.confidence * self.saving_ms_per_min, 3)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["roi"] = self.roi
        return out


def index_name(table: str, columns: list[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"[:63]


def create_index(dialect: str, table: str, columns: list[str], where: str | None = None,
                 order: dict[str, str] | None = None) -> str:
    """The DDL: ``CREATE INDEX CONCURRENTLY`` on PostgreSQL (no write lock on a live
    table), ``... ALGORITHM=INPLACE LOCK=NONE`` on MySQL/MariaDB (online: writes go on;
    no partial indexes there), plain ``CREATE INDEX`` on SQLite."""
    desc = [c + (" DESC" if order and order.get(c) == "desc" else "") for c in columns]
    concurrently = " CONCURRENTLY" if dialect == "postgresql" else ""
    partial = f" WHERE {where}" if where and dialect != "mysql" else ""
    online = " ALGORITHM=INPLACE LOCK=NONE" if dialect == "mysql" else ""
    name = index_name(table, [d.replace(" DESC", "_desc") for d in desc])
    return f"CREATE INDEX{concurrently} {name} ON {table} ({', '.join(desc)}){partial}{online};"


def index_columns(preds: list[Predicate], order_cols: list[str]) -> list[str]:
    """Equality columns first (in the statement's order), then the ORDER BY columns when
    every filter is an equality, else one range column."""
    eq: list[str] = []
    rng: list[str] = []
    for p in preds:
        if p.op in ("is", "like", "ilike"):
            continue  # a null test or a pattern: a B-tree index rarely serves it
        target = eq if p.equality else rng
        if p.column not in eq and p.column not in target:
            target.append(p.column)
    cols = list(eq)
    if order_cols and not rng:
        cols += [c for c in order_cols if c not in cols]
    elif rng:
        cols.append(rng[0])
    return cols


def _covered(info: TableInfo, cols: list[str], equality: set[str]) -> bool:
    """An existing index leads with the first column, or with one of the equality
    columns: the planner could use it and chose a scan, so an index is not what is
    missing."""
    return any(ix and (ix[0] == cols[0] or ix[0] in equality) for ix in info.indexes)


def findings(fp_id: str, sql: str, shape: Shape, plan: Plan | None,
             tables: dict[str, TableInfo | None], per_minute_ms: float, max_in_list: int,
             dialect: str, th: Thresholds) -> list[Finding]:
    """Every finding for one fingerprint (see the module docstring for the rules)."""
    out: list[Finding] = []

    def add(kind: str, table: str | None, evidence: str, fix: str, conf: float, f: float,
            columns: list[str] | None = None) -> None:
        out.append(Finding(kind, fp_id, sql, table, evidence, fix, round(conf, 2),
                           round(f * per_minute_ms, 3), columns or [],
                           plan_method=plan.method if plan else "", improvement=round(f, 3)))

    if plan is not None:
        seen: set[str] = set()
        for scan in plan.scans:
            # SQLite names the alias only ("SCAN o"): the statement says which table it is
            if scan.table not in tables:
                scan.table = shape.tables.get(scan.table, scan.table)
            info = tables.get(scan.table)
            if info is None or scan.table in seen:
                continue
            rows = info.rows or 0.0
            if rows < th.min_rows:
                continue
            # this access's own predicates: by its alias when the plan names one
            aliased = [p for p in shape.predicates if p.table == scan.table
                       and p.alias is not None and p.alias == scan.alias]
            preds = aliased or [p for p in shape.predicates if p.table == scan.table
                                and (p.alias is None or p.alias == scan.table
                                     or p.alias not in shape.tables
                                     or scan.alias == scan.table)]
            if scan.kind == "index":
                # an index serves the access but an equality is checked row by row
                # after it: the index on that column is what is missing
                preds = [p for p in preds if p.equality and p.op != "is"
                         and f"{p.column} =" in scan.filter]
                if not preds:
                    continue
            elif scan.kind not in ("full", "auto_index"):
                continue
            order_cols = [c for q, c, _d in shape.order_by
                          if shape.table_of(q, c, {t: set(i.columns) for t, i in tables.items()
                                                   if i}) == scan.table]
            filters = [p for p in preds if p.join is None and p.op != "is"]
            joins = [p for p in preds if p.join is not None]
            use = filters or joins
            if not use and not (shape.limit and order_cols and plan.sort_for_limit):
                continue
            cols = index_columns(use, order_cols if shape.limit else [])
            cols = [c for c in cols if c in info.columns]
            key = info.clustered_key
            if key and len(cols) > len(key) and cols[-len(key):] == key:
                cols = cols[:-len(key)]  # InnoDB: every secondary index ends with them
            if not cols or _covered(info, cols, {p.column for p in use if p.equality}):
                continue
            seen.add(scan.table)
            nulls = [p.column for p in preds if p.op == "is" and p.column in info.columns]
            where = f"{nulls[0]} IS NULL" if nulls and len(info.columns) > 1 else None
            # "is null" may be "is not null": the fingerprint keeps "not", check it
            if where and f"{nulls[0]} is not null" in sql:
                where = f"{nulls[0]} IS NOT NULL"
            order = {c: d for _q, c, d in shape.order_by}
            ddl = create_index(dialect, scan.table, cols, where, order)
            if not use:
                add("sort_without_index", scan.table,
                    f"{plan.method}: {scan.detail or 'full scan'} on {scan.table} "
                    f"(~{rows:.0f} rows) sorted in full for ORDER BY ... LIMIT", ddl, 0.7, 0.8,
                    cols)
                continue
            if dialect == "postgresql":
                selectivity = (scan.rows or 0.0) / rows if rows else 1.0
                conf = 0.9 if selectivity <= 0.05 else 0.7 if selectivity <= 0.2 else 0.0
                f = min(0.95, 1.0 - selectivity)
                if conf == 0.0 and not filters:
                    # a hash join scanning the whole table: an index on the join column
                    # pays when the other side brings few rows
                    others = [s.rows or 0.0 for s in plan.scans for p in joins
                              if p.join and s.table == p.join.split(".")[0]]
                    if others and min(others) <= 0.05 * rows:
                        conf, f, selectivity = 0.7, 0.9, min(others) / rows
                if conf == 0.0:
                    continue  # the filter keeps most rows: a scan is right
                access = "Seq Scan" if scan.kind == "full" else "an index scan filtering"
                ev = (f"{plan.method}: {access} on {scan.table} (~{rows:.0f} rows, planner "
                      f"expects {scan.rows:.0f} out: {selectivity:.1%})"
                      f"{' filter ' + (scan.filter or scan.detail) if scan.detail else ''}")
            elif info.distinct:
                # MySQL: no selectivity in the plan; the sampled distinct counts give it
                # (equalities as independent, 1/distinct each; a range alone keeps 1/3)
                eq = dict.fromkeys(p.column for p in use
                                   if p.equality and p.column in info.distinct)
                selectivity = math.prod(1.0 / max(1.0, info.distinct[c]) for c in eq) \
                    if eq else 1.0 / 3.0
                conf = 0.9 if selectivity <= 0.05 else 0.7 if selectivity <= 0.2 else 0.0
                if conf == 0.0:
                    continue  # the filter keeps most rows: a scan is right
                f = min(0.95, 1.0 - selectivity)
                ev = (f"{plan.method}: {scan.detail} (~{rows:.0f} rows, no index on "
                      f"{cols[0]}; ~{selectivity:.1%} kept by sampled distinct values)")
            else:
                equality = any(p.equality for p in use)
                conf = 0.8 if scan.kind == "auto_index" else 0.7 if equality else 0.5
                f = 0.8 if equality else 0.5
                ev = f"{plan.method}: {scan.detail} (~{rows:.0f} rows, no index on {cols[0]})"
            if plan.sort_for_limit and shape.limit and order_cols and \
                    all(c in cols for c in order_cols):
                ev += "; the same index gives ORDER BY ... LIMIT its order"
            add("missing_index", scan.table, ev, ddl, conf, f, cols)
        if plan.correlated:
            corr = [p for p in shape.predicates if p.join is not None]
            hint = ""
            if corr:
                p = corr[-1]
                hint = (f": LEFT JOIN (SELECT {p.column}, <aggregate> FROM {p.table} GROUP BY "
                        f"{p.column}) s ON s.{p.column} = {p.join}")
            add("correlated_subquery", None,
                f"{plan.method}: {plan.correlated} subquer{'y' if plan.correlated == 1 else 'ies'}"
                f" run once per outer row ({plan.text[:200]})",
                "rewrite the correlated subquery as a JOIN to a grouped derived table" + hint
                + " (or EXISTS/semi-join); index its correlation column", 0.8, 0.5)
    if max_in_list >= th.in_list_min:
        fix = ("pass one array parameter: WHERE col = ANY(%(ids)s) (psycopg adapts a list; "
               "SQLAlchemy: col == any_(bindparam('ids', type_=ARRAY(...)))), or JOIN a "
               "VALUES list / temporary table past ~10 000 items"
               if dialect == "postgresql" else
               "bind one JSON array: JOIN JSON_TABLE(?, '$[*]' COLUMNS (v BIGINT PATH '$')) "
               "j ON j.v = col (MySQL 8, MariaDB 10.6+), or a temporary table"
               if dialect == "mysql" else
               "bind one JSON array: WHERE col IN (SELECT value FROM json_each(?)), or a "
               "temporary table")
        add("long_in_list", None, f"IN list of up to {max_in_list} items: one statement text and"
            f" one plan per list length, the list parsed on every call", fix, 0.6, 0.2)
    for t in sorted({t for t in shape.tables.values()}):
        info = tables.get(t)
        if info is None or len(info.columns) < th.wide_columns:
            continue
        mine = [c for q, c in shape.select_columns if shape.table_of(q, c) == t]
        if shape.select_star or len(set(mine)) >= len(info.columns):
            add("wide_select", t, f"reads all {len(info.columns)} columns of {t}",
                f"load only the columns the code reads: Django .only('col', ...) / "
                f".defer(...); SQLAlchemy load_only({t.capitalize()}.col, ...)", 0.4, 0.2)
    return out
