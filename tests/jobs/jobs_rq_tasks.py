"""The job functions of tests/jobs/test_jobs_rq.py (RQ imports them by dotted path)."""

from __future__ import annotations

import os
import time

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool

engine = create_engine("sqlite://", poolclass=StaticPool,
                       connect_args={"check_same_thread": False})
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT)"))
    conn.execute(text("INSERT INTO book (id, title) VALUES " +
                      ", ".join(f"({i}, 't{i}')" for i in range(12))))


def add(x: int, y: int) -> int:
    return x + y


def sleepy(ms: float) -> float:
    time.sleep(ms / 1000.0)
    return ms


def burn(ms: float) -> float:
    """CPU for ``ms`` milliseconds."""
    end = time.process_time() + ms / 1000.0
    n = 0
    while time.process_time() < end:
        n += 1
    return ms


def boom() -> None:
    raise ValueError("no such invoice")


def flaky(counter_key: str, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts (counted in Redis: each attempt may run in
    another process)."""
    client = redis.Redis.from_url(os.environ["JOBS_TEST_RQ_REDIS"])
    attempt = int(client.incr(counter_key))
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt}")
    return attempt


def titles_one_by_one() -> int:
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM book"))]
        for book_id in ids:
            conn.execute(text("SELECT title FROM book WHERE id = :id"), {"id": book_id})
    return len(ids)
