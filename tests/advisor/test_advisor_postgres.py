"""The query advisor against a real PostgreSQL (started on loopback by the test setup;
with CI=true a missing server fails the test). Tables of 60 000 / 6 000 rows, analysed,
so the planner's choice between a scan and an index is the real one."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.queries.events import QueryEvent
from services import fresh_database

pytestmark = pytest.mark.service


@pytest.fixture(scope="module", params=["15", "16"])
def server_url(request: pytest.FixtureRequest) -> str:
    """The system PostgreSQL (15 on Debian bookworm: PREPARE + force_generic_plan) and
    PostgreSQL 16 (EXPLAIN (GENERIC_PLAN))."""
    url: str = request.getfixturevalue("postgres_url" if request.param == "15"
                                       else "postgres16_url")
    return url


@pytest.fixture(scope="module")
def shop(server_url: str) -> str:
    return fresh_database(server_url, "advisor_shop", """
            CREATE TABLE customers (id int PRIMARY KEY, email text, region int);
            CREATE TABLE orders (id int PRIMARY KEY, customer_id int, status int,
                                 created_at timestamptz, total numeric, sku int);
            CREATE INDEX ix_orders_sku ON orders (sku);
            INSERT INTO customers SELECT g, 'u' || g || '@example.com', g % 10
              FROM generate_series(1, 6000) g;
            INSERT INTO orders SELECT g, 1 + (g * 7919) % 6000, g % 3,
                   now() - (g || ' minutes')::interval, g % 100, g % 5000
              FROM generate_series(1, 60000) g;
            ANALYZE customers; ANALYZE orders;
        """)


def advisor(url: str, **kw: Any) -> QueryAdvisor:
    return QueryAdvisor(lambda: psycopg.connect(url), "postgresql", **kw)


def run(adv: QueryAdvisor, *sqls: str, now: float = 0.0) -> list[Any]:
    events = [QueryEvent(sql=s, duration_ms=6.0, db="postgresql") for s in sqls]
    for _ in range(10):
        adv.offer("GET /orders", events)
    return adv.run(now)


def test_generic_plan_finds_the_missing_index(shop: str) -> None:
    adv = advisor(shop)
    found = run(adv, "SELECT id, total FROM orders WHERE customer_id = %s "
                     "ORDER BY created_at DESC LIMIT 20")
    assert [f.kind for f in found] == ["missing_index"]
    f = found[0]
    assert f.fix == ("CREATE INDEX CONCURRENTLY ix_orders_customer_id_created_at_desc ON orders "
                     "(customer_id, created_at DESC);")
    assert "Seq Scan on orders" in f.evidence and f.confidence == 0.9
    with psycopg.connect(shop) as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])
    assert f.plan_method == ("EXPLAIN (GENERIC_PLAN)" if version >= 160000 else
                             "PREPARE + force_generic_plan + EXPLAIN EXECUTE (NULLs)")


def test_applied_fix_turns_the_scan_into_an_index_scan(shop: str) -> None:
    sql = "SELECT id FROM orders WHERE status = %s AND customer_id = %s"
    found = run(advisor(shop), sql)
    assert [f.fix for f in found] == [
        "CREATE INDEX CONCURRENTLY ix_orders_status_customer_id ON orders (status, customer_id);"]
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute(found[0].fix)
    try:
        adv = advisor(shop)
        assert run(adv, sql) == []
        plan = next(iter(adv.plans.values()))[0]
        assert plan is not None and any(s.kind == "index" for s in plan.scans)
    finally:
        with psycopg.connect(shop, autocommit=True) as conn:
            conn.execute("DROP INDEX ix_orders_status_customer_id")


def test_no_index_advice_for_unselective_filters_or_indexed_columns(shop: str) -> None:
    # status has 3 values: a scan is right; sku and id are indexed
    assert run(advisor(shop), "SELECT id FROM orders WHERE status = %s",
               "SELECT id FROM orders WHERE sku = %s",
               "SELECT * FROM customers WHERE id = %s") == []


def test_correlated_subquery_and_join_column(shop: str) -> None:
    # A generous statement timeout: this test reads the plan; the timeout has its own
    # test below (the first EXPLAINs on a just-started server failed once at 250 ms).
    adv = advisor(shop, timeout_ms=5000)
    found = run(adv, "SELECT c.id, (SELECT max(o.total) FROM orders o WHERE o.customer_id = c.id) "
                     "FROM customers c WHERE c.region = %s")
    kinds = {f.kind: f for f in found}
    assert "correlated_subquery" in kinds, (adv.stats(), [(f.kind, f.evidence) for f in found])
    assert "customer_id" in kinds["correlated_subquery"].fix
    assert "SubPlan" in kinds["correlated_subquery"].evidence
    assert ("orders", "CREATE INDEX CONCURRENTLY ix_orders_customer_id ON orders (customer_id);") in [
        (f.table, f.fix) for f in found if f.kind == "missing_index"]


def test_order_by_limit_without_index(shop: str) -> None:
    found = run(advisor(shop), "SELECT id FROM orders ORDER BY total DESC LIMIT 10")
    assert [(f.kind, f.fix) for f in found] == [
        ("sort_without_index",
         "CREATE INDEX CONCURRENTLY ix_orders_total_desc ON orders (total DESC);")]


def test_runs_read_only_with_a_timeout_never_in_the_apps_transaction(shop: str) -> None:
    """The app holds a lock in its own open transaction: the advisor's EXPLAIN, on its
    own connection, gives up at the lock timeout instead of waiting, and the app's
    transaction is untouched."""
    app = psycopg.connect(shop)
    app.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    try:
        adv = advisor(shop, timeout_ms=100)
        done = threading.Event()
        result: list[Any] = []

        def go() -> None:
            result.append(run(adv, "SELECT id FROM customers WHERE email = %s"))
            done.set()

        threading.Thread(target=go, daemon=True).start()
        assert done.wait(10), "the EXPLAIN waited for the app's lock"
        assert result == [[]]
        assert adv.stats()["explain_failures"] == 1
        assert app.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        app.rollback()
        app.close()
    # and once the lock is gone the same advisor explains (after the recheck delay)
    found = run(adv, "SELECT id FROM customers WHERE email = %s", now=4000.0)
    assert [f.fix for f in found] == [
        "CREATE INDEX CONCURRENTLY ix_customers_email ON customers (email);"]


def test_an_index_scan_that_filters_row_by_row_still_misses_an_index(shop: str) -> None:
    """The planner walks the created_at index for ORDER BY ... LIMIT and checks
    customer_id on every row: the (customer_id, created_at) index is still missing."""
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute("CREATE INDEX ix_orders_created_at_given ON orders (created_at)")
        conn.execute("ANALYZE orders")
    try:
        found = run(advisor(shop), "SELECT id FROM orders WHERE customer_id = %s AND "
                                   "created_at > %s ORDER BY created_at LIMIT 5")
        assert [(f.kind, f.columns) for f in found] == [
            ("missing_index", ["customer_id", "created_at"])]
    finally:
        with psycopg.connect(shop, autocommit=True) as conn:
            conn.execute("DROP INDEX ix_orders_created_at_given")


def test_a_self_join_is_judged_per_alias(shop: str) -> None:
    found = run(advisor(shop), "SELECT a.id, b.id FROM customers a JOIN customers b "
                               "ON b.email = a.email WHERE a.id = %s")
    assert [f.fix for f in found] == [
        "CREATE INDEX CONCURRENTLY ix_customers_email ON customers (email);"]
