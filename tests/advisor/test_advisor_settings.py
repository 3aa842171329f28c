"""The advisor from settings (``config.advice``): keyword arguments, a mapping (Django's
``PULSEGATE``), Flask's ``app.config`` and ``PULSEGATE_*`` variables all attach the same
advisor when the gate is built, with its own connection from ``advisor_database``; a bad
value is a ``ConfigError`` naming the key, never echoing a password."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pulsegate import Config, ConfigError, PulseGate
from pulsegate.queries.events import QueryEvent


def offer_and_run(gate: PulseGate) -> list[Any]:
    advisor = gate.advisor
    assert advisor is not None and advisor.queries is not None
    ev = QueryEvent(sql="SELECT id FROM orders WHERE customer_id = ?", duration_ms=5.0,
                    db="sqlite")
    for _ in range(5):
        advisor.queries.offer("GET /orders", [ev])
    advisor.run()
    return advisor.findings()


def test_off_by_default_nothing_built() -> None:
    gate = PulseGate()
    assert gate.advisor is None and "advisor" not in gate.scheduler.jobs
    gate.close()


def test_patterns_and_capacity_without_a_database() -> None:
    gate = PulseGate(Config(advisor=True, advisor_interval=5))
    assert gate.advisor is not None and gate.advisor.queries is None
    assert gate.scheduler.jobs["advisor"].interval == 5.0
    assert gate.listeners == []  # no query advice: no per-request listener
    assert "advisor" in gate.stats()
    gate.close()


def test_environment_variables_give_query_advice_on_a_read_only_connection(
        orders_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEGATE_ADVISOR", "true")
    monkeypatch.setenv("PULSEGATE_ADVISOR_DATABASE", f"sqlite:///{orders_db}")
    monkeypatch.setenv("PULSEGATE_ADVISOR_MIN_TABLE_ROWS", "100")
    gate = PulseGate.from_env()
    found = offer_and_run(gate)
    assert [f["fix"] for f in found] == [
        "CREATE INDEX ix_orders_customer_id ON orders (customer_id);"]
    explainer = gate.advisor.queries.explainer
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        explainer.conn.get().execute("CREATE TABLE x (a)")
    gate.advisor.close()
    gate.close()


def test_a_mapping_as_djangos_pulsegate_dict(orders_db: Path) -> None:
    gate = PulseGate(Config.from_mapping({"advisor": True, "advisor_database":
                                          f"sqlite:///{orders_db}", "advisor_min_table_rows": 100}))
    assert offer_and_run(gate)[0]["columns"] == ["customer_id"]
    gate.close()


def test_flask_config_with_a_sqlalchemy_engine(orders_db: Path) -> None:
    from flask import Flask
    from sqlalchemy import create_engine

    from pulsegate.flask import PulseGate as FlaskPulseGate
    from pulsegate.flask import get_gate

    app = Flask(__name__)
    engine = create_engine(f"sqlite:///{orders_db}")
    app.config.update(PULSEGATE_ADVISOR=True, PULSEGATE_ADVISOR_DATABASE=engine,
                      PULSEGATE_ADVISOR_MIN_TABLE_ROWS=100)
    FlaskPulseGate(app)
    gate = get_gate(app)
    assert offer_and_run(gate)[0]["kind"] == "missing_index"
    gate.close()
    engine.dispose()


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("advisor_database", "oracle://scott:tiger@db/orcl", "a database URL"),
    ("advisor_database", "postgresql://app:s3cret@db:99999/orders_db", "a database URL"),
    ("advisor_database", "not an alias!", "a database URL"),
    ("advisor_top", "0", "an integer >= 1"),
    ("advisor_explains_per_minute", "nan", "a number >= 0.1"),
    ("advisor_target_latency_ms", "-1", "a number >= 0.1"),
    ("advisor", "perhaps", "true or false"),
])
def test_bad_values_from_every_entry_point(key: str, value: str, allowed: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    builds = [lambda: Config(**{key: value}),
              lambda: Config.from_mapping({key.upper(): value}, prefix="PULSEGATE_"),
              lambda: Config.from_env({"PULSEGATE_" + key.upper(): value})]
    for build in builds:
        with pytest.raises(ConfigError) as info:
            build()
        assert info.value.key == key and allowed in info.value.allowed
        assert "s3cret" not in str(info.value) and "tiger" not in str(info.value)


def test_a_sqlite_memory_url_or_a_missing_alias_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="advisor_database"):
        PulseGate(Config(advisor=True, advisor_database="sqlite:///:memory:"))
    # a bare word is a Django alias; without a configured Django project (or with one
    # lacking the alias) the gate refuses to start rather than advising nothing
    with pytest.raises(ConfigError, match="advisor_database"):
        PulseGate(Config(advisor=True, advisor_database="no_such_alias_xyz"))


def test_advisor_keywords_share_the_settings_checks() -> None:
    from pulsegate.advisor import Advisor

    with pytest.raises(ConfigError) as info:
        Advisor(PulseGate(), quantile=1.5)
    assert info.value.key == "advisor_quantile"
