"""The advisor's connection from a Django ``DATABASES`` alias (``from_django``, or
``advisor_database`` in ``settings.PULSEGATE``): a new raw connection with the alias's
settings, made on the scheduler thread -- never the application's connection, never in
its transaction, never measured by pulsegate's own Django instrumentation. On a real
PostgreSQL (started on loopback; fails, never skips, without it) and a SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import psycopg
import pytest
from django.conf import settings

from services import fresh_database

if not settings.configured:  # settings are process-global: another directory may have
    settings.configure(      # configured them first, with the same default
        DEBUG=False, SECRET_KEY="pulsegate-tests", ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, LOGGING_CONFIG=None)
    django.setup()

from django.db import connections
from django.test import override_settings

from pulsegate import ConfigError
from pulsegate.advisor.orm import from_django
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.django.gate import get_gate, set_gate
from pulsegate.queries.events import QueryEvent


def add_alias(alias: str, conf: dict[str, Any]) -> None:
    connections.settings[alias] = connections.configure_settings({"default": conf})["default"]


def drop_alias(alias: str) -> None:
    connections[alias].close()
    del connections.settings[alias]


@pytest.fixture()
def sqlite_alias(orders_db: Path) -> Iterator[str]:
    add_alias("advisor_sqlite", {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": str(orders_db)})
    yield "advisor_sqlite"
    drop_alias("advisor_sqlite")


@pytest.fixture()
def pg_alias(postgres_url: str) -> Iterator[str]:
    url = fresh_database(postgres_url, "advisor_django", """
        CREATE TABLE shop_order (id int PRIMARY KEY, customer_id int, total int);
        INSERT INTO shop_order SELECT g, g % 3000, g % 90 FROM generate_series(1, 30000) g;
        ANALYZE shop_order;
    """)
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    add_alias("advisor_pg", {"ENGINE": "django.db.backends.postgresql", "NAME": "advisor_django",
                             "USER": "postgres", "HOST": host_port.split(":")[0],
                             "PORT": host_port.split(":")[1]})
    yield "advisor_pg"
    drop_alias("advisor_pg")


def advise(adv: QueryAdvisor, sql: str, db: str) -> list[Any]:
    for _ in range(5):
        adv.offer("GET /orders", [QueryEvent(sql=sql, duration_ms=5.0, db=db)])
    return adv.run(0.0)


def on_another_thread(fn: Any) -> Any:
    """The advisor runs on the scheduler's thread: do the same."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(60)
    return out[0]


@pytest.mark.service
def test_a_postgresql_alias_gets_its_own_connection_outside_the_apps_transaction(
        pg_alias: str) -> None:
    where = from_django(pg_alias)
    assert where["dialect"] == "postgresql"
    app = connections[pg_alias]
    with app.cursor() as cur:  # the application's connection, in an open transaction
        cur.execute("BEGIN")
        cur.execute("SELECT pg_backend_pid()")
        app_pid = cur.fetchone()[0]
    adv = QueryAdvisor(where["connect"], "postgresql", thresholds=None)
    found = on_another_thread(lambda: advise(
        adv, 'SELECT "shop_order"."id" FROM "shop_order" WHERE "shop_order"."customer_id" = %s',
        "postgresql"))
    assert [f.fix for f in found] == [
        "CREATE INDEX CONCURRENTLY ix_shop_order_customer_id ON shop_order (customer_id);"]
    own = adv.explainer.conn.conn  # type: ignore[union-attr]
    assert own.execute("SELECT pg_backend_pid()").fetchone()[0] != app_pid
    own.rollback()
    assert app.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    app.connection.rollback()
    adv.close()


def test_a_sqlite_alias_from_settings_pulsegate(sqlite_alias: str) -> None:
    """``settings.PULSEGATE = {"advisor": True, "advisor_database": alias}``: the
    project's gate has query advice on that alias, through a raw DB-API connection of
    its own (not Django's wrapper, so no execute wrapper -- pulsegate's own
    instrumentation included -- sees the EXPLAINs), and the alias's connection in the
    application's thread is never opened by it."""
    with override_settings(PULSEGATE={"advisor": True, "advisor_database": sqlite_alias,
                                      "advisor_min_table_rows": 100}):
        gate = get_gate()
        try:
            assert gate.advisor is not None and gate.advisor.queries is not None
            found = on_another_thread(lambda: advise(
                gate.advisor.queries, 'SELECT "orders"."id" FROM "orders" WHERE '
                '"orders"."customer_id" = %s', "sqlite"))
            assert [f.columns for f in found] == [["customer_id"]]
            own = gate.advisor.queries.explainer.conn.conn
            assert type(own) is sqlite3.Connection
            assert connections[sqlite_alias].connection is None
            gate.advisor.close()
        finally:
            gate.close()
            set_gate(None)


def test_an_unknown_alias_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        from_django("nope")
    assert info.value.key == "advisor_database" and "default" in info.value.allowed
