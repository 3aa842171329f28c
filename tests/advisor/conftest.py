"""Shared set-up of the advisor tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture()
def orders_db(tmp_path: Path) -> Path:
    """A SQLite file with ``orders`` (5 000 rows, ``customer_id`` unindexed, 700 values)."""
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, total INT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
        INSERT INTO orders SELECT i, i % 700, i % 90 FROM n;
    """)
    conn.commit()
    conn.close()
    return path


@pytest.fixture()
def items_db(tmp_path: Path) -> Callable[..., Path]:
    """Makes a SQLite file with ``items`` (3 000 rows): an ``id`` and, per keyword, an
    unindexed integer column holding the row id modulo the keyword's value."""
    def make(**columns: int) -> Path:
        path = tmp_path / "items.db"
        conn = sqlite3.connect(path)
        conn.execute("create table items (id integer primary key, "
                     + ", ".join(f"{c} integer" for c in columns) + ")")
        conn.executemany(f"insert into items values (?{', ?' * len(columns)})",
                         [(i, *(i % m for m in columns.values())) for i in range(3000)])
        conn.commit()
        conn.close()
        return path
    return make
