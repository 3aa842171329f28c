"""The advisor's connection made from the application's SQLAlchemy engine: a new
DB-API connection outside the engine's pool, sync and async engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from pulsegate.advisor.orm import from_sqlalchemy
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.queries.events import QueryEvent


def advise(source: dict[str, object], sql: str) -> list[str]:
    adv = QueryAdvisor(source["connect"], str(source["dialect"]))  # type: ignore[arg-type]
    adv.offer("GET /x", [QueryEvent(sql=sql, duration_ms=2.0, db=str(source["dialect"]))])
    return [f.fix for f in adv.run(0.0)]


def test_sqlite_engine_outside_the_pool_and_the_apps_transaction(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(text("create table t (id integer primary key, k integer)"))
        conn.execute(text("insert into t (k) select value from json_each(:v)"),
                     {"v": "[" + ",".join(str(i % 97) for i in range(2000)) + "]"})
    with engine.connect() as app:  # the application's connection, in a transaction
        app.execute(text("insert into t (k) values (1)"))
        assert engine.pool.checkedout() == 1
        source = from_sqlalchemy(engine)
        assert source["dialect"] == "sqlite"
        assert advise(source, "SELECT id FROM t WHERE k = ?") == [
            "CREATE INDEX ix_t_k ON t (k);"]
        assert engine.pool.checkedout() == 1  # nothing borrowed from the app's pool
        app.rollback()


def test_async_engine_gets_the_sync_driver(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    source = from_sqlalchemy(engine)
    conn = source["connect"]()  # type: ignore[operator]
    assert conn.execute("select 1").fetchone() == (1,)
    conn.close()


@pytest.mark.service
def test_postgresql_engine(postgres_url: str) -> None:
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS orm_t; CREATE TABLE orm_t (id int PRIMARY KEY,"
                          " k int); INSERT INTO orm_t SELECT g, g % 997 FROM "
                          "generate_series(1, 20000) g; ANALYZE orm_t"))
    source = from_sqlalchemy(engine)
    assert source["dialect"] == "postgresql"
    assert advise(source, "SELECT id FROM orm_t WHERE k = %(k)s") == [
        "CREATE INDEX CONCURRENTLY ix_orm_t_k ON orm_t (k);"]
