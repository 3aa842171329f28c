"""The advisor's own connection, made from an application's SQLAlchemy engine or Django
``DATABASES`` alias (an adapter: it imports SQLAlchemy or Django, lazily).

    from pulsegate.advisor import Advisor
    from pulsegate.advisor.orm import from_django, from_sqlalchemy
    Advisor(gate, **from_sqlalchemy(engine))
    Advisor(gate, **from_django("default"))

or from settings: ``advisor_database`` (:func:`connection_for`).

Each call of ``connect`` opens a **new** DB-API connection with the engine's URL and
driver (``dialect.connect`` with ``dialect.create_connect_args``), outside the engine's
pool: the advisor never borrows one of the application's connections, so it can never
run inside one of its transactions. An async engine's driver (asyncpg, aiosqlite) is
replaced by the dialect's synchronous one (psycopg, sqlite3): the advisor runs on the
scheduler thread, not in an event loop.
"""

from __future__ import annotations

from typing import Any

from pulsegate.advisor.connections import from_url
from pulsegate.config_checks import ConfigError, _is_engine

__all__ = ["connection_for", "from_django", "from_sqlalchemy"]

#: Django's ``connection.vendor`` -> the advisor's dialect
_VENDORS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql"}

#: async driver -> the synchronous driver of the same dialect
_SYNC_DRIVERS = {"postgresql+asyncpg": "postgresql+psycopg",
                 "postgresql+psycopg_async": "postgresql+psycopg",
                 "sqlite+aiosqlite": "sqlite+pysqlite", "sqlite+pysqlite_async": "sqlite+pysqlite"}


def from_sqlalchemy(engine: Any) -> dict[str, Any]:
    """``{"connect": ..., "dialect": ...}`` for :class:`~pulsegate.advisor.Advisor`
    from a SQLAlchemy ``Engine`` or ``AsyncEngine``."""
    from sqlalchemy import create_engine

    sync = getattr(engine, "sync_engine", engine)
    url = sync.url
    if url.drivername in _SYNC_DRIVERS:
        url = url.set(drivername=_SYNC_DRIVERS[url.drivername])
        sync = create_engine(url)  # only for its dialect: never connected through
    dialect = sync.dialect
    cargs, cparams = dialect.create_connect_args(url)

    def connect() -> Any:
        return dialect.connect(*cargs, **cparams)

    name = "postgresql" if dialect.name.startswith("postgres") else str(dialect.name)
    return {"connect": connect, "dialect": name}


def connection_for(value: Any, key: str = "advisor_database") -> dict[str, Any]:
    """``{"connect", "dialect"}`` for a URL, a Django alias or a SQLAlchemy engine."""
    if _is_engine(value):
        return from_sqlalchemy(value)
    if isinstance(value, str) and "://" in value:
        return from_url(value, key)
    if isinstance(value, str):
        return from_django(value, key)
    raise ConfigError(key, value, "a database URL, a Django DATABASES alias or a "
                      "SQLAlchemy engine")


def from_django(alias: str = "default", key: str = "advisor_database") -> dict[str, Any]:
    """A connection factory from a Django ``DATABASES`` alias.

    Each call makes a new raw DB-API connection with that alias's settings
    (``get_new_connection(get_connection_params())`` on the scheduler thread's own
    ``connections[alias]``, which Django keeps per thread): never the application's
    connection, never inside its transaction, and not wrapped by Django's execute
    wrappers, so pulsegate does not measure its own EXPLAINs. A test database
    (``test_<name>``) is followed: the settings are read when a connection is made."""
    try:
        from django.db import connections
        known = list(connections.settings)
    except Exception as exc:  # Django missing or not configured
        raise ConfigError(key, alias, "a DATABASES alias of a configured Django project "
                          f"({type(exc).__name__})") from None
    if alias not in known:
        raise ConfigError(key, alias, "a DATABASES alias: " + ", ".join(map(str, known)))
    vendor = connections[alias].vendor
    dialect = _VENDORS.get(vendor)
    if dialect is None:
        raise ConfigError(key, alias, "an alias of a PostgreSQL, SQLite or MySQL/MariaDB "
                          f"database (this one is {vendor})")

    def connect() -> Any:
        wrapper = connections[alias]
        return wrapper.get_new_connection(wrapper.get_connection_params())

    return {"connect": connect, "dialect": dialect}
