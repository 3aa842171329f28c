"""The query advisor's loop, run on the scheduler thread (never on the request path).

Each run: fold the requests' statements into :class:`~pulsegate.advisor.costs.StatementCosts`;
take the ``top`` fingerprints by total time; for each read-only one not explained in the
last ``recheck_seconds`` -- while the EXPLAIN budget lasts (a token bucket of
``explains_per_minute``) -- ask the database for its plan on the advisor's own
connection (:mod:`pulsegate.advisor.plans`) and read the catalog of the tables it
names; then (re)compute every finding with the current time shares
(:mod:`pulsegate.advisor.rules`). Statements that write, DDL, several statements or
texts cut short are never sent (:func:`~pulsegate.advisor.shape.explainable`); a failed
EXPLAIN is counted by its exception's type and not retried before ``recheck_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pulsegate.advisor.columns import ColumnReads, refine
from pulsegate.advisor.costs import StatementCosts
from pulsegate.advisor.plans import Explainer, Plan, PostgresExplainer, SQLiteExplainer, TableInfo
from pulsegate.advisor.plans_mysql import MySQLExplainer
from pulsegate.advisor.rules import Finding, Thresholds, findings
from pulsegate.advisor.shape import explainable, resolve_unqualified, shape_of, to_placeholders
from pulsegate.bounded import BoundedLRU

if TYPE_CHECKING:
    from pulsegate.queries.events import QueryEvent

__all__ = ["QueryAdvisor", "TokenBucket", "explainer_for"]


def explainer_for(dialect: str, connect: Callable[[], Any], timeout_ms: int) -> Explainer | None:
    """The explainer of a dialect (None: plan-free advice only)."""
    if dialect in ("postgresql", "postgres"):
        return PostgresExplainer(connect, timeout_ms)
    if dialect == "sqlite":
        return SQLiteExplainer(connect, timeout_ms)
    if dialect in ("mysql", "mariadb"):
        return MySQLExplainer(connect, timeout_ms)
    return None


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``per_minute`` saved up."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute)
        self.tokens = self.capacity
        self.at: float | None = None  # the first take starts the clock

    def take(self, now: float) -> bool:
        if self.at is not None and now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _dialect_name(name: str) -> str:
    """One name per family: ORMs say ``postgres``/``postgresql``, ``mysql``/``mariadb``."""
    low = name.lower()
    return "postgresql" if low.startswith("postgres") else "mysql" if low == "mariadb" else low


class QueryAdvisor:
    def __init__(self, connect: Callable[[], Any] | None, dialect: str, *,
                 explains_per_minute: float = 6.0, timeout_ms: int = 250, top: int = 10,
                 recheck_seconds: float = 3600.0, thresholds: Thresholds | None = None,
                 max_fingerprints: int = 1000, clock: Callable[[], float] = time.monotonic,
                 explainer: Explainer | None = None, columns: ColumnReads | None = None
                 ) -> None:
        self.dialect = _dialect_name(dialect)
        self.explainer = explainer if explainer is not None else (
            explainer_for(self.dialect, connect, timeout_ms) if connect is not None else None)
        self.costs = StatementCosts(max_fingerprints)
        self.top = top
        self.recheck = recheck_seconds
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.bucket = TokenBucket(explains_per_minute)
        #: fingerprint id -> (plan or None, tables, when explained, why not explained)
        self.plans: BoundedLRU[str, tuple[Plan | None, dict[str, TableInfo | None], float,
                                          str | None]] = BoundedLRU(max_fingerprints)
        self.findings: list[Finding] = []
        #: which columns of wide tables the code reads (ORM reads, sampled): wide_select
        self.columns = columns
        self.counts: dict[str, int] = {"explains": 0, "explain_failures": 0,
                                       "rate_limited": 0}
        self.skipped: dict[str, int] = {}
        self.failures: dict[str, int] = {}

    def offer(self, endpoint: str, queries: Sequence[QueryEvent] | None) -> None:
        self.costs.offer(endpoint, queries)

    def run(self, now: float | None = None) -> list[Finding]:
        now = self.clock() if now is None else now
        self.costs.drain(now)
        minutes = self.costs.minutes()
        out: list[Finding] = []
        for entry in self.costs.top(self.top):
            dialect = self._dialect(entry.get("db"))
            if dialect != self.dialect:
                continue
            fp_id = str(entry["id"])
            reason = explainable(str(entry["sql"]), str(entry["verb"]))
            shape = shape_of(str(entry["sql"]))
            known = self.plans.get(fp_id)
            if reason is None and (known is None or now - known[2] >= self.recheck):
                known = self._explain(fp_id, str(entry["sql"]), shape, now)
            elif reason is not None and known is None:
                self.skipped[reason] = self.skipped.get(reason, 0) + 1
                known = (None, {}, now, reason)
                self.plans.put(fp_id, known)
            plan, tables = (known[0], known[1]) if known is not None else (None, {})
            if tables:
                resolve_unqualified(shape, {t: set(i.columns) for t, i in tables.items() if i})
            found = findings(fp_id, str(entry["sql"]), shape, plan, tables,
                             float(entry["total_ms"]) / minutes, int(entry["max_in_list"]),
                             dialect, self.thresholds)
            for f in found:
                f.endpoints = list(entry["endpoints"])
            if self.columns is not None:
                read = set(shape.tables.values())
                found = [g for g in (refine(f, self.columns, read) for f in found)
                         if g is not None]
            out += found
        out.sort(key=lambda f: (-f.roi, f.fingerprint, f.kind))
        self.findings = out
        return out

    def _dialect(self, db: object) -> str:
        return _dialect_name(str(db or self.dialect))

    def _explain(self, fp_id: str, text: str, shape: Any, now: float
                 ) -> tuple[Plan | None, dict[str, TableInfo | None], float, str | None] | None:
        explainer = self.explainer
        if explainer is None:
            return None
        if not self.bucket.take(now):
            self.counts["rate_limited"] += 1
            return self.plans.get(fp_id)
        plan: Plan | None = None
        tables: dict[str, TableInfo | None] = {}
        why: str | None = None
        try:
            self.counts["explains"] += 1
            plan = explainer.plan(to_placeholders(text, self.dialect))
            for table in sorted(set(shape.tables.values())):
                tables[table] = explainer.table(table)
        except Exception as exc:
            self.counts["explain_failures"] += 1
            kind = type(exc).__name__
            self.failures[kind] = self.failures.get(kind, 0) + 1
            why = f"EXPLAIN failed: {kind}"
        known = (plan, tables, now, why)
        self.plans.put(fp_id, known)
        return known

    def report(self, limit: int = 20) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.findings[:limit]]

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "fingerprints": len(self.costs.entries),
                "requests_dropped": self.costs.dropped, "findings": len(self.findings),
                "skipped": dict(self.skipped), "failures": dict(self.failures),
                "dialect": self.dialect, "plans": self.explainer is not None}

    def close(self) -> None:
        if self.explainer is not None:
            self.explainer.close()
