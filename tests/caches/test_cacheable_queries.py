"""Queries worth caching: the same read with the same parameters across requests, on a
table that is rarely written -- with SQLAlchemy statements seen by the gate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

import pulsegate.caches
from pulsegate.caches.queries import tables
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo
from pulsegate.sqlalchemy import instrument, uninstrument


@pytest.fixture()
def engine() -> Iterator[object]:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("create table settings (k text primary key, v text)"))
        conn.execute(text("create table visits (id integer primary key, page text)"))
        conn.execute(text("insert into settings values ('theme', 'dark'), ('lang', 'en')"))
    instrument(engine)
    yield engine
    uninstrument(engine)


def serve(gate: PulseGate, engine: object, route: str, write_visit: bool) -> None:
    ctx = gate.begin(RequestInfo("GET", route, route))
    assert ctx is not None
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("select v from settings where k = :k"), {"k": "theme"}).all()
        conn.execute(text("select count(*) from visits where page = :p"), {"p": "/"}).all()
        if write_visit:
            conn.execute(text("insert into visits (page) values (:p)"), {"p": "/"})
            conn.commit()
    gate.response_headers(ctx, 200)
    gate.finish(ctx)


def test_a_repeated_read_on_a_quiet_table_is_worth_caching(engine: object) -> None:
    gate = PulseGate(cache_monitoring=True)
    try:
        pulsegate.caches.instrument(gate)
        for i in range(30):
            serve(gate, engine, "/home" if i % 2 else "/about", write_visit=True)
        rows = pulsegate.caches.report(gate)["cacheable_queries"]
        assert [r["tables"] for r in rows] == [["settings"]]   # visits is written each time
        best = rows[0]
        assert best["requests"] == 30 and best["writes"] == 0
        assert best["saving_ms"] == pytest.approx(29 * best["mean_ms"])
        assert set(best["endpoints"]) == {"GET /home", "GET /about"}
        assert "theme" not in best["sql"]
    finally:
        gate.close()


def test_different_parameters_are_different_entries(engine: object) -> None:
    gate = PulseGate()
    try:
        monitor = pulsegate.caches.instrument(gate)
        for i in range(10):
            ctx = gate.begin(RequestInfo("GET", "/s", "/s"))
            assert ctx is not None
            with engine.connect() as conn:  # type: ignore[attr-defined]
                conn.execute(text("select v from settings where k = :k"), {"k": f"k{i}"}).all()
            gate.finish(ctx)
        assert monitor.cacheable is not None and monitor.cacheable.ranked() == []
    finally:
        gate.close()


def test_tables_of_a_statement() -> None:
    assert tables("select * from a join b on a.x = b.y where a.id in (select id from c)") \
        == ("a", "b", "c")
