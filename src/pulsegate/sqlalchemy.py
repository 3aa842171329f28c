"""SQLAlchemy 2.x instrumentation: every statement of an instrumented engine becomes a
:class:`~pulsegate.queries.QueryEvent` of the current request or ``capture()``.

``instrument(engine)`` covers one ``Engine`` or ``AsyncEngine`` (through its
``sync_engine``); ``instrument()`` covers every engine, present and future (it listens
on the ``Engine`` class). Idempotent, and safe to combine: a statement is recorded once
even when both a class-level and an engine-level listener fire.

The ORM tells us what it is doing: a ``do_orm_execute`` listener on ``Session``
recognises relationship loads (``is_relationship_load`` and the loader path give
``Author.books``, collection or scalar) and deferred/expired column loads, and marks the
statement it then runs, so the detector can say ``selectinload(Author.books)``.

Outside a request or ``capture()`` each statement costs one ContextVar read.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session

from pulsegate.context import query_sink
from pulsegate.queries import callsite
from pulsegate.queries.events import QueryEvent, current_load, hook_faults, params_identity
from pulsegate.queries.nplusone import register_model_resolver

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_T0 = "_pulsegate_t0"
_finder = callsite.default_finder


def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
            executemany: bool) -> None:
    if query_sink.get() is None or context is None:
        return
    if getattr(context, _T0, None) is None:  # a second listener (class + engine) skips
        setattr(context, _T0, perf_counter())


def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
           executemany: bool) -> None:
    sink = query_sink.get()
    if sink is None or context is None:
        return
    try:
        t0 = context.__dict__.pop(_T0, None)
        if t0 is None:
            return
        now = perf_counter()
        if executemany:
            phash, pcount = None, None
        else:
            phash, pcount = params_identity(parameters)
        load = current_load.get()
        sink.add_query(QueryEvent(
            statement, (now - t0) * 1000.0, t0, pcount, phash, None,
            _finder.find(2) if callsite.enabled else None,
            load[0] if load is not None else None, executemany,
            conn.engine.dialect.name, load[1] if load is not None else None, "sqlalchemy"))
    except Exception as exc:  # fail open: never break the application's query
        _fault(exc)


def _fault(exc: BaseException) -> None:
    hook_faults.record("sqlalchemy hook", exc)


def _orm_execute(state: ORMExecuteState) -> Any:
    """Mark relationship and column loads, then run the statement inside the mark."""
    if query_sink.get() is None or not state.is_select:
        return None
    try:
        if state.is_relationship_load:
            path = state.loader_strategy_path
            prop = getattr(path, "prop", None)
            if prop is None:
                return None
            mark = (f"{prop.parent.class_.__name__}.{prop.key}",
                    "collection" if prop.uselist else "scalar")
        elif state.is_column_load:
            mapper = state.bind_arguments.get("mapper")
            if mapper is None:
                return None
            opts = state._orm_compile_options()
            props = sorted(getattr(opts, "_only_load_props", None) or ())
            if 0 < len(props) < len(mapper.column_attrs):
                mark = (f"{mapper.class_.__name__}.{props[0]}", "deferred")
            else:
                mark = (f"{mapper.class_.__name__}", "expired")
        else:
            return None
    except Exception:
        return None
    token = current_load.set(mark)
    try:
        return state.invoke_statement()
    finally:
        current_load.reset(token)


def _resolve_model(table: str) -> tuple[str, str] | None:
    """Table name -> (mapped class name, primary-key attribute), for suggestions."""
    from sqlalchemy.orm.mapper import _all_registries

    for reg in list(_all_registries()):
        for mapper in reg.mappers:
            if getattr(mapper.local_table, "name", None) == table:
                pk = mapper.primary_key[0] if mapper.primary_key else None
                attr = mapper.get_property_by_column(pk).key if pk is not None else "id"
                return mapper.class_.__name__, attr
    return None


def _target(engine: Engine | AsyncEngine | None) -> Any:
    if engine is None:
        return Engine
    if isinstance(engine, AsyncEngine):
        return engine.sync_engine
    return engine


def instrument(engine: Engine | AsyncEngine | None = None) -> None:
    """Record the statements of ``engine`` (sync or async), or of every engine."""
    target = _target(engine)
    if not event.contains(target, "before_cursor_execute", _before):
        event.listen(target, "before_cursor_execute", _before)
        event.listen(target, "after_cursor_execute", _after)
    if not event.contains(Session, "do_orm_execute", _orm_execute):
        event.listen(Session, "do_orm_execute", _orm_execute)
    register_model_resolver("sqlalchemy", _resolve_model)


def is_instrumented(engine: Engine | AsyncEngine | None = None) -> bool:
    target = _target(engine)
    return bool(event.contains(target, "before_cursor_execute", _before) or
                event.contains(Engine, "before_cursor_execute", _before))


def uninstrument(engine: Engine | AsyncEngine | None = None) -> None:
    """Remove the listeners ``instrument(engine)`` added (tests, benchmarks)."""
    target = _target(engine)
    if event.contains(target, "before_cursor_execute", _before):
        event.remove(target, "before_cursor_execute", _before)
        event.remove(target, "after_cursor_execute", _after)
    if engine is None and event.contains(Session, "do_orm_execute", _orm_execute):
        event.remove(Session, "do_orm_execute", _orm_execute)
