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

import sys
from typing import TYPE_CHECKING, Any

from pulsegate.advisor.connections import from_url
from pulsegate.config_checks import ConfigError, _is_engine

if TYPE_CHECKING:
    from pulsegate.advisor.columns import ColumnReads

__all__ = ["column_trackers", "connection_for", "from_django", "from_sqlalchemy"]

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


def column_trackers() -> list[Any]:
    """The ORM trackers of :class:`pulsegate.advisor.columns.ColumnReads`: SQLAlchemy's
    and Django's (each imports its ORM only when a window opens, once it is loaded)."""
    from pulsegate.django.columns import DjangoColumns

    return [SQLAlchemyColumns(), DjangoColumns()]


#: ids of the tracked column attributes read during the current window.
_READ: set[int] = set()
#: rows read per mapped class in the window: a row counts when a read moves to another
#: instance (approximate under threads; bounded by the classes tracked)
_ROWS: dict[type, int] = {}
_LAST = [0]
_tracked_class: Any = None


class SQLAlchemyColumns:
    """The tracker of :class:`pulsegate.advisor.columns.ColumnReads` for SQLAlchemy: in
    a window, a table's mapped classes' column attributes record their reads and count
    the rows read (their class swapped for a subclass whose ``__get__`` records first);
    :meth:`close` swaps them back. (No ORM event is added or removed at run time:
    SQLAlchemy's listener lists may not change while another thread runs them.)"""

    def __init__(self) -> None:
        #: id(attribute) -> (table, key, attribute); (mapped class, evidence) per mapper
        self.tracked: dict[int, tuple[str, str, Any]] = {}
        self.classes: list[tuple[type, Any]] = []

    def ready(self) -> bool:
        return "sqlalchemy.orm" in sys.modules

    def open(self, table: str, reads: ColumnReads) -> None:
        from sqlalchemy.orm.attributes import InstrumentedAttribute

        for mapper in _mappers_of(table):
            keys = [p.key for p in mapper.column_attrs]
            self.classes.append((mapper.class_,
                                 reads.seen_for(table, mapper.class_.__name__, keys)))
            for key in keys:
                attr = mapper.class_manager.get(key)
                if type(attr) is InstrumentedAttribute:  # (else: left alone)
                    attr.__class__ = _tracked()
                    self.tracked[id(attr)] = (table, key, attr)

    def close(self, reads: ColumnReads) -> None:
        from sqlalchemy.orm.attributes import InstrumentedAttribute

        wanted = reads.wanted
        for ident, (table, key, attr) in self.tracked.items():
            attr.__class__ = InstrumentedAttribute
            seen = wanted.get(table)
            if ident in _READ and seen is not None:
                seen.read.add(key)
            _READ.discard(ident)
        for cls, seen in self.classes:
            seen.rows += _ROWS.pop(cls, 0)
        self.classes.clear()
        self.tracked.clear()


def _mappers_of(table: str) -> list[Any]:
    """The mappers whose own table is ``table`` (every registry of the process)."""
    from sqlalchemy.orm import mapperlib

    return [mapper for registry in list(mapperlib._all_registries())
            for mapper in list(registry.mappers)
            if getattr(mapper.local_table, "name", None) == table]


def _tracked() -> Any:
    """The ``InstrumentedAttribute`` subclass whose ``__get__`` records the read."""
    global _tracked_class
    if _tracked_class is None:
        from sqlalchemy.orm.attributes import InstrumentedAttribute

        class TrackedColumn(InstrumentedAttribute[Any]):
            __slots__ = ()
            inherit_cache = True

            def __get__(self, instance: Any, owner: Any = None) -> Any:
                if instance is not None:
                    _READ.add(id(self))
                    if id(instance) != _LAST[0]:
                        _LAST[0] = id(instance)
                        _ROWS[type(instance)] = _ROWS.get(type(instance), 0) + 1
                return InstrumentedAttribute.__get__(self, instance, owner)

        _tracked_class = TrackedColumn
    return _tracked_class
