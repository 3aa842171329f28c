"""The advisor plugged into a gate: statements reach it from finished requests, its jobs
run on the scheduler, it shows in stats, its state persists, bad options fail early."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fakeclock import FakeClock
from pulsegate import ConfigError, PulseGate
from pulsegate.advisor import Advisor
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("create table items (id integer primary key, owner integer, name text)")
    conn.executemany("insert into items values (?, ?, ?)",
                     [(i, i % 500, "x") for i in range(5000)])
    conn.commit()
    conn.close()
    return path


def request(gate: PulseGate, clock: FakeClock, sql: str) -> None:
    ctx = gate.begin(RequestInfo("GET", "/items", route="/items"))
    assert ctx is not None
    ctx.add_query(QueryEvent(sql=sql, duration_ms=3.0, db="sqlite"))
    clock.t += 0.01
    gate.response_headers(ctx, 200)
    gate.finish(ctx, 200)


def test_end_to_end_on_a_gate(db: Path) -> None:
    clock = FakeClock()
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t)
    advisor = Advisor(gate, connect=lambda: sqlite3.connect(db), dialect="sqlite")
    for _ in range(20):
        request(gate, clock, "SELECT id, name FROM items WHERE owner = 7")
    advisor.sample()
    advisor.run()
    report = advisor.report()
    assert [f["kind"] for f in report["findings"]] == ["missing_index"]
    assert report["findings"][0]["endpoints"] == ["GET /items"]
    assert report["findings"][0]["fix"] == "CREATE INDEX ix_items_owner ON items (owner);"
    assert gate.stats()["advisor"]["queries"]["explains"] == 1
    assert {"advisor", "advisor-patterns"} <= set(gate.scheduler.jobs)
    state = advisor.state()
    assert state["report"]["findings"] == report["findings"]
    Advisor(PulseGate(), dialect=None).load_state(state)
    gate.close()


def test_off_means_nothing_registered() -> None:
    gate = PulseGate()
    assert gate.listeners == [] and "advisor" not in gate.scheduler.jobs
    # patterns and capacity alone need no listener either
    Advisor(gate)
    assert gate.listeners == []


@pytest.mark.parametrize("kwargs", [
    {"connect": "postgresql://x", "dialect": "postgresql"},
    {"connect": sqlite3.connect, "dialect": "oracle"},
    {"explains_per_minute": 0, "connect": sqlite3.connect, "dialect": "sqlite"},
    {"interval": float("nan")},
    {"quantile": 1.5},
    {"statement_timeout_ms": 2.5, "connect": sqlite3.connect, "dialect": "sqlite"},
])
def test_bad_options_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Advisor(PulseGate(), **kwargs)  # type: ignore[arg-type]
