"""The advisor's own connection, made from an application's SQLAlchemy engine (an
adapter: it imports SQLAlchemy, lazily).

    from pulsegate.advisor import Advisor
    from pulsegate.advisor.orm import from_sqlalchemy
    Advisor(gate, **from_sqlalchemy(engine))

Each call of ``connect`` opens a **new** DB-API connection with the engine's URL and
driver (``dialect.connect`` with ``dialect.create_connect_args``), outside the engine's
pool: the advisor never borrows one of the application's connections, so it can never
run inside one of its transactions. An async engine's driver (asyncpg, aiosqlite) is
replaced by the dialect's synchronous one (psycopg, sqlite3): the advisor runs on the
scheduler thread, not in an event loop.
"""

from __future__ import annotations

from typing import Any

__all__ = ["from_sqlalchemy"]

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
