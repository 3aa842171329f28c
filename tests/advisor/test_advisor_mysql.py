"""The query advisor against a real MariaDB (Debian's mariadb-server-core, started on
loopback by the test setup; with CI=true a missing server fails the test). Tables of
20 000 / 4 000 rows, analysed, so the optimizer's choice between a scan and an index is
the real one. Statements arrive as the ORMs write them: SQLAlchemy's plain names and
Django's backquoted ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from pulsegate.advisor.connections import from_url
from pulsegate.advisor.plans_mysql import MySQLExplainer
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.queries.events import QueryEvent

pytestmark = pytest.mark.service


def connect(url: str, **kw: Any) -> Any:
    return from_url(url)["connect"]() if not kw else pymysql.connect(
        host="127.0.0.1", port=int(url.rsplit(":", 1)[1].split("/")[0]), user="root", **kw)


@pytest.fixture(scope="module")
def shop(mariadb_url: str) -> Iterator[str]:
    conn = connect(mariadb_url, autocommit=True)
    cur = conn.cursor()
    cur.execute("DROP DATABASE IF EXISTS advisor_shop")
    cur.execute("CREATE DATABASE advisor_shop")
    cur.execute("USE advisor_shop")
    cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(40), region INT)")
    cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, status INT, "
                "created_at DATETIME, total INT, sku INT, KEY ix_orders_sku (sku))")
    # seq_1_to_N: MariaDB's sequence engine, built in
    cur.execute("INSERT INTO customers SELECT seq, CONCAT('u', seq, '@example.com'), seq % 10 "
                "FROM seq_1_to_4000")
    cur.execute("INSERT INTO orders SELECT seq, 1 + (seq * 7919) % 4000, seq % 3, "
                "TIMESTAMP '2026-01-01 00:00:00' - INTERVAL seq MINUTE, seq % 100, seq % 5000 "
                "FROM seq_1_to_20000")
    cur.execute("ANALYZE TABLE customers, orders")
    cur.fetchall()
    conn.close()
    yield mariadb_url + "advisor_shop"


def advisor(url: str, **kw: Any) -> QueryAdvisor:
    return QueryAdvisor(from_url(url)["connect"], "mysql", **kw)


def run(adv: QueryAdvisor, *sqls: str, now: float = 0.0, db: str = "mysql") -> list[Any]:
    events = [QueryEvent(sql=s, duration_ms=6.0, db=db) for s in sqls]
    for _ in range(10):
        adv.offer("GET /orders", events)
    return adv.run(now)


def test_server_placeholders_find_the_missing_index(shop: str) -> None:
    adv = advisor(shop)
    found = run(adv, "SELECT id, total FROM orders WHERE customer_id = %s "
                     "ORDER BY created_at DESC LIMIT 20")
    assert [f.kind for f in found] == ["missing_index"]
    f = found[0]
    assert f.fix == ("CREATE INDEX ix_orders_customer_id_created_at_desc ON orders "
                     "(customer_id, created_at DESC) ALGORITHM=INPLACE LOCK=NONE;")
    assert "orders: type ALL" in f.evidence and f.confidence == 0.9
    assert "~0.1% kept by sampled distinct values" in f.evidence  # 1 / ~1000 customers
    assert f.plan_method.startswith("PREPARE 'EXPLAIN ...?'")
    assert adv.stats()["explains"] == 1 and adv.stats()["explain_failures"] == 0


def test_django_backquoted_statement_and_applied_fix(shop: str) -> None:
    """Django's MySQL backend quotes every name; once the advised index exists the plan
    uses it and the finding is gone."""
    sql = ("SELECT `orders`.`id`, `orders`.`total` FROM `orders` WHERE (`orders`.`status` = %s "
           "AND `orders`.`customer_id` = %s) ORDER BY `orders`.`id` ASC LIMIT 21")
    found = run(advisor(shop), sql)
    assert [f.fix for f in found] == ["CREATE INDEX ix_orders_status_customer_id ON orders "
                                      "(status, customer_id) ALGORITHM=INPLACE LOCK=NONE;"]
    conn = connect(shop)
    try:
        conn.cursor().execute(found[0].fix)
        adv = advisor(shop)
        assert run(adv, sql) == []
        plan = next(iter(adv.plans.values()))[0]
        assert plan is not None and [s.kind for s in plan.scans] == ["index"]
    finally:
        conn.cursor().execute("DROP INDEX ix_orders_status_customer_id ON orders")
        conn.close()


def test_no_index_advice_for_indexed_or_unselective_columns(shop: str) -> None:
    # sku has an index; id is the primary key (a const table: the row id = 1 is read);
    # status has 3 values (sampled: 3 distinct, a third of the rows kept): a scan is right
    assert run(advisor(shop), "SELECT id FROM orders WHERE sku = %s",
               "SELECT * FROM customers WHERE id = %s",
               "SELECT id FROM orders WHERE status = %s") == []


def test_correlated_subquery_and_its_column(shop: str) -> None:
    found = run(advisor(shop),
                "SELECT c.id, (SELECT max(o.total) FROM orders o WHERE o.customer_id = c.id) "
                "FROM customers c WHERE c.email = %s")
    kinds = {f.kind: f for f in found}
    assert "DEPENDENT SUBQUERY" in kinds["correlated_subquery"].evidence
    assert "customer_id" in kinds["correlated_subquery"].fix
    assert ("orders", ["customer_id"]) in [(f.table, f.columns) for f in found
                                          if f.kind == "missing_index"]


def test_order_by_limit_sorted_in_full(shop: str) -> None:
    found = run(advisor(shop), "SELECT id FROM orders ORDER BY total DESC LIMIT 10")
    assert [(f.kind, f.fix) for f in found] == [
        ("sort_without_index",
         "CREATE INDEX ix_orders_total_desc ON orders (total DESC) ALGORITHM=INPLACE LOCK=NONE;")]


def test_never_a_value_or_a_write_reaches_the_server(shop: str) -> None:
    """What the server was sent, from its own general log: the fingerprint with ``?``,
    the neutral constants, and nothing that writes."""
    root = connect(shop)
    cur = root.cursor()
    cur.execute("SELECT @@general_log_file")  # the test server logs every statement
    log = Path(str(cur.fetchone()[0]))
    root.close()
    start = log.stat().st_size
    run(advisor(shop), "SELECT id FROM orders WHERE customer_id = 4242 AND status = 'x7q'",
        "UPDATE orders SET total = 1 WHERE id = 5", "SELECT 1; DROP TABLE orders")
    sent = log.read_bytes()[start:].decode(errors="replace")
    assert "EXPLAIN select id from orders where customer_id = ? and status = ?" in sent
    assert "4242" not in sent and "x7q" not in sent
    assert "update orders" not in sent.lower() and "drop table" not in sent.lower()


def test_gives_up_at_the_lock_timeout_never_in_the_apps_transaction(shop: str) -> None:
    """The app holds a metadata lock (LOCK TABLES ... WRITE) on its own connection: the
    advisor's EXPLAIN gives up after ``lock_wait_timeout`` (whole seconds: 1 s here)
    instead of waiting, and the app's lock is untouched."""
    app = connect(shop)
    app.cursor().execute("LOCK TABLES customers WRITE")
    try:
        adv = advisor(shop, timeout_ms=100)
        done = threading.Event()
        result: list[Any] = []

        def go() -> None:
            result.append(run(adv, "SELECT id FROM customers WHERE region = %s"))
            done.set()

        threading.Thread(target=go, daemon=True).start()
        assert done.wait(10), "the EXPLAIN waited for the app's lock"
        assert result == [[]]
        assert adv.stats()["explain_failures"] == 1
    finally:
        app.cursor().execute("UNLOCK TABLES")
        app.close()
    found = run(adv, "SELECT id FROM customers WHERE region = %s", now=4000.0)
    assert [f.fix for f in found] == [
        "CREATE INDEX ix_customers_region ON customers (region) ALGORITHM=INPLACE LOCK=NONE;"]


def test_catalog_and_limit_placeholders(shop: str) -> None:
    explainer = MySQLExplainer(from_url(shop)["connect"])
    info = explainer.table("orders")
    assert info is not None and info.columns[:3] == ["id", "customer_id", "status"]
    assert ["sku"] in info.indexes and ["id"] in info.indexes and info.clustered_key == ["id"]
    assert info.distinct["status"] == 3 and info.distinct["id"] == 1000  # first 1 000 rows
    assert info.rows is not None and 15_000 <= info.rows <= 25_000
    assert explainer.table("no_such_table") is None
    # LIMIT ? gets a count, not the value constant
    plan = explainer.plan("select id from orders where status = ? limit ? offset ?")
    assert plan is not None and [s.kind for s in plan.scans] == ["full"]
    explainer.close()


def test_a_join_behind_a_primary_key_lookup_is_still_planned(shop: str) -> None:
    """``c.id = ?`` makes customers a const table, read while planning; the constant is
    one an auto-increment key holds, so the orders side is still planned (a ``'0'``
    would have ended the plan at "Impossible WHERE noticed after reading const
    tables")."""
    found = run(advisor(shop), "SELECT o.id FROM customers c JOIN orders o ON "
                               "o.customer_id = c.id WHERE c.id = %s")
    assert [(f.table, f.columns) for f in found] == [("orders", ["customer_id"])]
