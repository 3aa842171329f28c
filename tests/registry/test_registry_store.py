import logging
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsegate.registry.store import DB_NAME, SCHEMA_VERSION, RedisStore, SQLiteStore, open_store


def test_sqlite_roundtrip_wal_and_schema(tmp_path) -> None:
    store = SQLiteStore(tmp_path)
    assert store.path == tmp_path / DB_NAME
    store.write([("a", "k1", {"x": 1}), ("a", "k2", [1, 2]), ("ep:w1", "GET /", {"n": 3})])
    assert store.read("a") == {"k1": {"x": 1}, "k2": [1, 2]}
    assert store.sections("ep:") == ["ep:w1"]
    store.write(deletes=[("a", "k1")], drop_sections=["ep:w1"])
    assert store.read("a") == {"k2": [1, 2]} and store.sections("ep:") == []
    store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    again = SQLiteStore(tmp_path)
    assert again.read("a") == {"k2": [1, 2]} and again.moved_aside is None
    again.close()


def test_a_failed_batch_writes_nothing(tmp_path) -> None:
    store = SQLiteStore(tmp_path)
    store.write([("a", "k", 1)])
    with pytest.raises(ValueError):
        store.write([("a", "k", 2), ("a", "bad", float("nan"))])  # NaN: not valid JSON
    assert store.read("a") == {"k": 1}
    # fails inside the transaction, after the delete ran: rolled back as a whole
    with pytest.raises(sqlite3.Error):
        store.write([("a", object(), 1)], deletes=[("a", "k")])  # type: ignore[list-item]
    assert store.read("a") == {"k": 1}
    store.write([("a", "k2", 2)])  # the connection is usable afterwards
    store.close()


def test_damaged_file_is_moved_aside_and_state_starts_cold(tmp_path, caplog) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="pulsegate.registry"):
        store = SQLiteStore(tmp_path)
    assert store.moved_aside is not None and store.moved_aside.exists()
    assert store.moved_aside.read_bytes().startswith(b"this is not")
    assert "moved it to" in caplog.text
    assert store.read("anything") == {}
    store.write([("a", "k", 1)])
    assert store.read("a") == {"k": 1}
    store.close()


def test_truncated_database_is_moved_aside(tmp_path) -> None:
    store = SQLiteStore(tmp_path)
    store.write([("s", str(i), {"v": "x" * 500}) for i in range(200)])
    store.close()
    db = tmp_path / DB_NAME
    for suffix in ("-wal", "-shm"):
        (tmp_path / (DB_NAME + suffix)).unlink(missing_ok=True)
    raw = db.read_bytes()
    db.write_bytes(raw[:100] + b"\xff" * 200 + raw[300: len(raw) // 2])
    again = SQLiteStore(tmp_path)
    assert again.moved_aside is not None
    assert again.read("s") == {}
    again.close()


def test_incompatible_schema_is_moved_aside(tmp_path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    store = SQLiteStore(tmp_path)
    assert store.moved_aside is not None
    store.write([("a", "k", 1)])
    assert store.read("a") == {"k": 1}
    store.close()


def test_unreadable_value_is_skipped(tmp_path) -> None:
    store = SQLiteStore(tmp_path)
    store.write([("a", "good", 1)])
    store.conn.execute("INSERT INTO kv VALUES ('a', 'bad', '{not json', 0)")
    assert store.read("a") == {"good": 1}
    store.close()


@pytest.mark.parametrize("nested", ["[" * 100_000 + "]" * 100_000,
                                    '{"a":' * 50_000 + "1" + "}" * 50_000])
def test_a_value_nested_past_the_parsers_depth_is_skipped(tmp_path, nested) -> None:
    """Attack probe (hsec6): a hostile or damaged row nested 50 000 deep raised
    RecursionError out of read() (only ValueError was caught), so one such row lost its
    whole section at start-up (every endpoint's state, every model version) and failed
    the clean-up job at every run. Now it is one unreadable value, skipped."""
    store = SQLiteStore(tmp_path)
    store.write([("a", "good", 1)])
    store.conn.execute("INSERT INTO kv VALUES ('a', 'bad', ?, 0)", (nested,))
    assert store.read("a") == {"good": 1}
    store.close()


def test_open_store_choice(tmp_path, redis_service) -> None:
    assert open_store(None, None) is None
    s = open_store(str(tmp_path), None)
    assert isinstance(s, SQLiteStore)
    s.close()
    r = open_store(str(tmp_path), redis_service.url, "t-open")
    assert isinstance(r, RedisStore)
    r.close()


def test_redis_roundtrip(redis_service) -> None:
    store = RedisStore(redis_service.url, namespace="t-roundtrip")
    store.write([("a", "k1", {"x": 1}), ("ep:w1", "GET /", {"n": 3})])
    assert store.read("a") == {"k1": {"x": 1}}
    assert store.sections("ep:") == ["ep:w1"]
    store.write(deletes=[("a", "k1")], drop_sections=["ep:w1"])
    assert store.read("a") == {} and store.sections("ep:") == []
    # the schema version is part of the key prefix
    assert store.client.keys("t-roundtrip:v1:*")
    store.close()


_VALID: dict[str, bytes] = {}


def _valid_db(tmp_path_factory) -> bytes:
    if "db" not in _VALID:
        d = tmp_path_factory.mktemp("valid")
        s = SQLiteStore(d)
        s.write([("s", str(i), {"v": i, "pad": "x" * 300}) for i in range(100)])
        s.close()
        conn = sqlite3.connect(d / DB_NAME)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        _VALID["db"] = (d / DB_NAME).read_bytes()
    return _VALID["db"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_the_file_never_raises(tmp_path_factory, data) -> None:
    raw = bytearray(_valid_db(tmp_path_factory))
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 50))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
    else:
        raw = bytearray(data.draw(st.binary(min_size=1, max_size=4096)))
    d = tmp_path_factory.mktemp("damaged")
    (d / DB_NAME).write_bytes(bytes(raw))
    store = SQLiteStore(d)  # never raises
    try:
        # Damage quick_check missed at open surfaces here: moved aside, never raised.
        section = store.read("s")
        assert all(isinstance(v, dict) for v in section.values())
        store.write([("t", "k", 1)])
        assert store.read("t") == {"k": 1}
    finally:
        store.close()
