"""The query advisor against a real SQLite database large enough that the planner's
choice is the real one (20 000 orders, 4 000 customers)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.queries.events import QueryEvent

ORDERS = 20_000


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("advisor") / "shop.db"
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.executescript("""
        create table customers (id integer primary key, email text, name text);
        create table orders (id integer primary key, customer_id integer, status text,
                             created_at real, total real, sku text);
        create index ix_orders_sku on orders (sku);
    """)
    conn.executemany("insert into customers values (?, ?, ?)",
                     [(i, f"u{i}@example.com", f"n{i}") for i in range(4000)])
    conn.executemany("insert into orders values (?, ?, ?, ?, ?, ?)",
                     [(i, rng.randrange(4000), rng.choice("abc"), rng.random(), 1.0,
                       f"s{rng.randrange(5000)}") for i in range(ORDERS)])
    conn.commit()
    conn.close()
    return path


class Recording:
    """A connection factory that records every statement the advisor sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent: list[tuple[str, Any]] = []
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        sent = self.sent

        class Cursor:
            def __init__(self) -> None:
                self.cur = conn.cursor()

            def execute(self, sql: str, params: Any = ()) -> Any:
                sent.append((sql, params))
                return self.cur.execute(sql, params)

            def fetchall(self) -> list[Any]:
                return self.cur.fetchall()

        class Conn:
            def cursor(self) -> Cursor:
                return Cursor()

            def set_progress_handler(self, fn: Callable[[], int] | None, n: int) -> None:
                conn.set_progress_handler(fn, n)

            def close(self) -> None:
                conn.close()

        return Conn()


def run(advisor: QueryAdvisor, *sqls: str, calls: int = 10, now: float = 0.0) -> list[Any]:
    events = [QueryEvent(sql=s, duration_ms=4.0, db="sqlite") for s in sqls]
    for _ in range(calls):
        advisor.offer("GET /orders", events)
    return advisor.run(now)


def test_finds_the_missing_index_with_the_right_column_order(shop: Path) -> None:
    adv = QueryAdvisor(Recording(shop), "sqlite", clock=lambda: 0.0)
    found = run(adv, "SELECT orders.id, orders.total FROM orders WHERE orders.customer_id = ?"
                     " ORDER BY orders.created_at DESC LIMIT 10")
    assert [f.kind for f in found] == ["missing_index"]
    f = found[0]
    # equality column first, then the ORDER BY column in its direction
    assert f.fix == ("CREATE INDEX ix_orders_customer_id_created_at_desc ON orders "
                     "(customer_id, created_at DESC);")
    assert "SCAN orders" in f.evidence and f.endpoints == ["GET /orders"]
    assert 0 < f.confidence <= 1 and f.saving_ms_per_min > 0


def test_applying_the_fix_removes_the_finding(shop: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    src = sqlite3.connect(shop)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    sql = "SELECT id FROM orders WHERE customer_id = ? AND created_at > ?"
    found = run(QueryAdvisor(Recording(copy), "sqlite"), sql)
    assert [f.kind for f in found] == ["missing_index"]
    dst.execute(found[0].fix)
    dst.commit()
    dst.close()
    assert run(QueryAdvisor(Recording(copy), "sqlite"), sql) == []


def test_no_finding_where_an_index_or_the_primary_key_serves(shop: Path) -> None:
    adv = QueryAdvisor(Recording(shop), "sqlite")
    assert run(adv, "SELECT * FROM orders WHERE sku = ?", "SELECT * FROM orders WHERE id = ?",
               "SELECT * FROM customers WHERE id = ?") == []


def test_correlated_subquery_and_long_in_list(shop: Path) -> None:
    adv = QueryAdvisor(Recording(shop), "sqlite")
    found = run(adv, "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id)"
                     " FROM customers c WHERE c.id < ?",
                "SELECT id FROM orders WHERE id IN (" + ", ".join(["?"] * 80) + ")")
    kinds = {f.kind: f for f in found}
    assert "correlated_subquery" in kinds and "CORRELATED" in kinds["correlated_subquery"].evidence
    assert "customer_id" in kinds["correlated_subquery"].fix
    assert kinds["missing_index"].fix == "CREATE INDEX ix_orders_customer_id ON orders (customer_id);"
    assert "80 items" in kinds["long_in_list"].evidence
    assert "json_each" in kinds["long_in_list"].fix


def test_never_sends_writes_ddl_values_or_several_statements(shop: Path) -> None:
    rec = Recording(shop)
    adv = QueryAdvisor(rec, "sqlite")
    run(adv, "UPDATE orders SET status = 'x' WHERE id = 1",
        "DELETE FROM orders WHERE id = 2", "CREATE TABLE t (a int)",
        "SELECT 1; DROP TABLE orders",
        "SELECT id FROM orders WHERE customer_id = 'secret-value-42' AND total > 99.5")
    assert rec.sent, "the read-only query was explained"
    for sql, params in rec.sent:
        head = sql.split(" ", 3)
        assert head[0] in ("EXPLAIN", "PRAGMA", "SELECT"), sql
        if head[0] == "SELECT":
            assert sql.startswith("SELECT max(rowid) FROM"), sql
        assert "secret" not in sql and "99.5" not in sql
        assert all(p is None for p in params)
    assert not any("update" in s.lower() or "delete" in s.lower() or "drop" in s.lower()
                   for s, _ in rec.sent)
    assert adv.stats()["skipped"] == {"not a query": 3, "several statements": 1}


def test_explains_are_rate_limited(shop: Path) -> None:
    rec = Recording(shop)
    adv = QueryAdvisor(rec, "sqlite", explains_per_minute=2, clock=lambda: 0.0)
    sqls = [f"SELECT id FROM orders WHERE customer_id = ? AND total > {i}" for i in range(5)]
    sqls = [f"SELECT id, {c} FROM orders WHERE customer_id = ?" for c in
            ("total", "status", "sku", "created_at", "customer_id")]
    run(adv, *sqls, now=0.0)
    assert adv.stats()["explains"] == 2 and adv.stats()["rate_limited"] == 3
    run(adv, *sqls, now=30.0)  # one more token after 30 s at 2 a minute
    assert adv.stats()["explains"] == 3
    run(adv, *sqls, now=120.0)
    assert adv.stats()["explains"] == 5
    assert rec.opened == 1  # one connection of its own, kept


def test_a_failing_explain_is_counted_not_raised(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    adv = QueryAdvisor(Recording(empty), "sqlite")
    assert run(adv, "SELECT id FROM missing_table WHERE a = ?") == []
    assert adv.stats()["explain_failures"] == 1
    assert adv.stats()["failures"] == {"OperationalError": 1}
