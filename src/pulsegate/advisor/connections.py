"""The advisor's own connection from a database URL (``advisor_database``; a Django
alias or a SQLAlchemy engine: :mod:`pulsegate.advisor.orm`).

* a **URL**: ``postgresql://user:pw@host:port/db`` (psycopg 3, else psycopg2),
  ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` (opened **read-only**,
  ``mode=ro``), ``mysql://`` / ``mariadb://user:pw@host:port/db`` (PyMySQL); a
  SQLAlchemy-style ``+driver`` suffix is ignored.

It gives ``{"connect": ..., "dialect": ...}`` for :class:`~pulsegate.advisor.Advisor`.
``connect`` is called on the scheduler thread, on first use and after a failure; it
opens a **new** DB-API connection every time, never one of the application's, so an
EXPLAIN can never run inside an application transaction.
"""

from __future__ import annotations

import importlib
import sqlite3
import urllib.parse
from collections.abc import Callable
from typing import Any

from pulsegate.config_checks import ConfigError
from pulsegate.config_sections.advisor import database_dialect, without_password

__all__ = ["from_url"]


def _driver(key: str, url: str, *modules: str) -> Any:
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError(key, without_password(url),
                      f"a URL whose driver is installed ({' or '.join(modules)})")


def from_url(url: str, key: str = "advisor_database") -> dict[str, Any]:
    """A connection factory for a database URL (see the module docstring)."""
    dialect = database_dialect(url)
    parts = urllib.parse.urlsplit(url)
    connect: Callable[[], Any]
    if dialect == "postgresql":
        driver = _driver(key, url, "psycopg", "psycopg2")
        plain = urllib.parse.urlunsplit(parts._replace(scheme="postgresql"))

        def connect() -> Any:
            return driver.connect(plain)
    elif dialect == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path or path == ":memory:":
            raise ConfigError(key, url, "sqlite:///path to a database file (an in-memory "
                              "database is another connection's own)")
        target = "file:" + urllib.parse.quote(path) + "?mode=ro"

        def connect() -> Any:
            return sqlite3.connect(target, uri=True, check_same_thread=False)
    elif dialect == "mysql":
        driver = _driver(key, url, "pymysql")
        params: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": urllib.parse.unquote(parts.username or ""),
            "password": urllib.parse.unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or None}
        socket = urllib.parse.parse_qs(parts.query).get("unix_socket")
        if socket:
            params["unix_socket"] = socket[0]

        def connect() -> Any:
            return driver.connect(**params)
    else:
        raise ConfigError(key, without_password(url), "postgresql://, sqlite:///, mysql:// "
                          "or mariadb:// URL")
    return {"connect": connect, "dialect": dialect}
