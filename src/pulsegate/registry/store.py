"""Persistence behind one small interface: sections of JSON values, written atomically.

A *section* is a named map ``key -> JSON value`` (``"models"``, ``"labels"``,
``"ep:<worker>"``, ...). Two backends implement :class:`StateStore`:

* :class:`SQLiteStore` -- the embedded default, one file in ``state_dir``. WAL mode, a
  busy timeout so several processes (gunicorn workers) can share the file, every batch
  in one ``BEGIN IMMEDIATE`` transaction (atomic: a crash leaves the previous snapshot),
  ``PRAGMA user_version`` as the schema version. A damaged or incompatible file is
  moved aside (``<name>.corrupt-<time>``) with a warning and a fresh one is created:
  the app starts cold, it never crashes.
* :class:`RedisStore` -- one hash per section under ``<namespace>:v<schema>:``, batches
  in a ``MULTI``/``EXEC`` transaction. The schema version is part of the key prefix, so
  an incompatible layout is simply never read.

The merging of per-worker statistics into a fleet baseline lives in
:mod:`pulsegate.registry.merge`; stores only move JSON.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger("pulsegate.registry")

#: Bump when the layout of persisted state changes incompatibly.
SCHEMA_VERSION = 1
DB_NAME = "pulsegate.sqlite3"

Put = tuple[str, str, Any]
Delete = tuple[str, str]


class StateStore(Protocol):
    """Where snapshots go. ``write`` is atomic: all of a batch or none of it."""

    kind: str
    location: str

    def write(self, puts: Iterable[Put] = (), deletes: Iterable[Delete] = (),
              drop_sections: Iterable[str] = ()) -> None: ...

    def read(self, section: str) -> dict[str, Any]: ...

    def sections(self, prefix: str = "") -> list[str]: ...

    def close(self) -> None: ...


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _loads(raw: str | bytes, where: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw)
    except (ValueError, RecursionError):  # (nested past the parser's depth: hostile)
        logger.warning("pulsegate: ignoring an unreadable persisted value in %s", where)
        return False, None


# --- SQLite ----------------------------------------------------------------------------


class SQLiteStore:
    """One SQLite file shared by every process of the app on this host."""

    kind = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0,
                 wall: Any = time.time) -> None:
        p = Path(path)
        if p.is_dir() or p.suffix == "":
            p.mkdir(parents=True, exist_ok=True)
            p = p / DB_NAME
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        self.location = str(p)
        self.timeout = timeout
        self.wall = wall
        self.lock = threading.Lock()
        #: Set when a damaged/incompatible file was moved aside at open.
        self.moved_aside: Path | None = None
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._open()
        _SQLITE_STORES.add(self)

    # Opening is where damage shows: a non-database file, a failed quick_check or a
    # schema from another version. All of them end in a fresh file, never an exception.
    def _open(self) -> None:
        try:
            self._conn = self._connect()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if not _damage(exc):
                raise  # locked or unwritable: not damage, let the caller count it
            self._move_aside(f"unreadable ({exc})")
            self._conn = self._connect()
        except _Incompatible as exc:
            self._move_aside(str(exc))
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        # Damaged text must not raise on read: replaced characters make that row's JSON
        # unreadable, and it is skipped like any other unreadable value.
        conn.text_factory = lambda b: b.decode("utf-8", "replace")
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise _Incompatible(f"schema version {version}, expected {SCHEMA_VERSION}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.info("pulsegate: SQLite journal mode is %s (WAL unavailable)", mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS kv (section TEXT NOT NULL, key TEXT NOT NULL,"
                        " value TEXT NOT NULL, updated REAL NOT NULL,"
                        " PRIMARY KEY (section, key)) WITHOUT ROWID")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            else:
                cols = {r[1] for r in conn.execute("PRAGMA table_info(kv)")}
                if cols != {"section", "key", "value", "updated"}:
                    raise _Incompatible("unexpected table layout")
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.wall()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                try:
                    os.replace(src, Path(str(target) + suffix))
                except OSError:
                    src.unlink(missing_ok=True)
        self.moved_aside = target
        logger.warning("pulsegate: persisted state %s is %s; moved it to %s and starting "
                       "cold", self.path, why, target)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A connection must never be used across fork() (gunicorn --preload builds
            # the gate in the master): abandon the parent's, unclosed, and reconnect.
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def write(self, puts: Iterable[Put] = (), deletes: Iterable[Delete] = (),
              drop_sections: Iterable[str] = ()) -> None:
        now = self.wall()
        rows = [(s, k, dumps(v), now) for s, k, v in puts]
        dels = list(deletes)
        drops = [(s,) for s in drop_sections]
        with self.lock:
            try:
                self._write(rows, dels, drops)
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                if not _damage(exc):
                    raise
                self._recover(exc)  # damage found late: a fresh file, then write there
                self._write(rows, dels, drops)

    def _write(self, rows: list[tuple[str, str, str, float]], dels: list[Delete],
               drops: list[tuple[str]]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if drops:
                conn.executemany("DELETE FROM kv WHERE section = ?", drops)
            if dels:
                conn.executemany("DELETE FROM kv WHERE section = ? AND key = ?", dels)
            if rows:
                conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def _recover(self, exc: BaseException) -> None:
        """Damage that ``quick_check`` did not see at open (it checks the structure, not
        every row) shows up on a later read or write: move the file aside, start fresh."""
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        self._move_aside(f"damaged ({exc})")
        self._conn = self._connect()

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self.lock:
            try:
                return self.conn.execute(sql, args).fetchall()
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                if not _damage(exc):
                    raise
                self._recover(exc)
                return []

    def read(self, section: str) -> dict[str, Any]:
        rows = self._query("SELECT key, value FROM kv WHERE section = ?", (section,))
        out: dict[str, Any] = {}
        for key, raw in rows:
            ok, value = _loads(raw, f"{self.path}:{section}")
            if ok:
                out[key] = value
        return out

    def sections(self, prefix: str = "") -> list[str]:
        rows = self._query("SELECT DISTINCT section FROM kv WHERE substr(section, 1, ?) = ?",
                           (len(prefix), prefix))
        return sorted(r[0] for r in rows)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None


class _Incompatible(Exception):
    pass


#: Errors that say "not now" rather than "this file is broken": never move a file aside
#: for these, let the caller count them and retry on the next snapshot.
_TRANSIENT_MARKERS = ("locked", "busy", "unable to open", "disk i/o", "out of memory",
                      "interrupted")


def _damage(exc: BaseException) -> bool:
    """Whether ``exc`` means the file itself is damaged. A damaged file shows up in many
    ways depending on which bytes broke -- plain DatabaseError ("malformed", "not a
    database"), OperationalError ("unsupported file format", "attempt to write a
    readonly database" when the header's write version is mangled), or text that does
    not decode -- so any of those but a lock, busy or I/O condition counts as damage."""
    if isinstance(exc, UnicodeDecodeError) or type(exc) is sqlite3.DatabaseError:
        return True
    if not isinstance(exc, sqlite3.OperationalError):
        return False  # programming, integrity, interface errors: our bug, not the file's
    text = str(exc).lower()
    return not any(marker in text for marker in _TRANSIENT_MARKERS)


_SQLITE_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child may have been forked while the parent's scheduler held the lock.
    for store in list(_SQLITE_STORES):
        store.lock = threading.Lock()
        store._conn, store._pid = None, os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- Redis -----------------------------------------------------------------------------


class RedisStore:
    """Sections as Redis hashes; for many workers or hosts sharing one baseline."""

    kind = "redis"

    def __init__(self, url: str, namespace: str = "pulsegate", *, client: Any = None,
                 timeout: float = 2.0) -> None:
        if client is None:
            import redis  # optional dependency, imported only when configured

            client = redis.Redis.from_url(url, socket_timeout=timeout,
                                          socket_connect_timeout=timeout)
        self.client = client
        self.location = url
        self.prefix = f"{namespace}:v{SCHEMA_VERSION}:"
        self._index = self.prefix + "sections"

    def _key(self, section: str) -> str:
        return self.prefix + "s:" + section

    def write(self, puts: Iterable[Put] = (), deletes: Iterable[Delete] = (),
              drop_sections: Iterable[str] = ()) -> None:
        grouped: dict[str, dict[str, str]] = {}
        for s, k, v in puts:
            grouped.setdefault(s, {})[k] = dumps(v)
        pipe = self.client.pipeline(transaction=True)
        for s in drop_sections:
            pipe.delete(self._key(s))
            pipe.srem(self._index, s)
        for s, k in deletes:
            pipe.hdel(self._key(s), k)
        for s, mapping in grouped.items():
            pipe.hset(self._key(s), mapping=mapping)
            pipe.sadd(self._index, s)
        pipe.execute()

    def read(self, section: str) -> dict[str, Any]:
        raw = self.client.hgetall(self._key(section))
        out: dict[str, Any] = {}
        for k, v in raw.items():
            ok, value = _loads(v, f"redis {section}")
            if ok:
                out[k.decode() if isinstance(k, bytes) else str(k)] = value
        return out

    def sections(self, prefix: str = "") -> list[str]:
        names = (m.decode() if isinstance(m, bytes) else str(m)
                 for m in self.client.smembers(self._index))
        return sorted(n for n in names if n.startswith(prefix))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def open_store(state_dir: str | None, redis_url: str | None, namespace: str = "pulsegate",
               wall: Any = time.time) -> StateStore | None:
    """The configured store: Redis when a URL is given, else SQLite in ``state_dir``,
    else None (in-memory only)."""
    if redis_url:
        return RedisStore(redis_url, namespace)
    if state_dir:
        return SQLiteStore(state_dir, wall=wall)
    return None
