"""SQLAlchemy 2.x instrumentation: every statement of an instrumented engine becomes a
:class:`~pulsegate.queries.QueryEvent` of the current request or ``capture()``.

``instrument(engine)`` covers one ``Engine`` or ``AsyncEngine`` (through its
``sync_engine``); ``instrument()`` covers every engine, present and future (it listens
on the ``Dialect`` class). Idempotent, and safe to combine: an engine already covered
by ``instrument()`` gets no second listener, and the first listener that runs a
statement ends the dispatch, so a statement is recorded once.

The hooks are SQLAlchemy's dialect ``do_execute`` / ``do_execute_no_params`` /
``do_executemany`` events: the listener times the dialect's own execution.

The ORM tells us what it is doing, in the execution context the hook is given
(:func:`_orm_load`): relationship loads (the loader path gives ``Author.books``,
collection or scalar) and deferred/expired column loads, so the detector can say
``selectinload(Author.books)``. A lazy
load also says whether its parent came from a multi-row result or was loaded singly (the
structural rule of :mod:`pulsegate.queries.structural`): SQLAlchemy stamps every
instance with the number of the result that built it, and :func:`_origin` counts that
result's instances only when a lazy load asks -- nothing is done per loaded row.

Outside a request or ``capture()`` each statement costs one ContextVar read.
"""

from __future__ import annotations

import sys
from itertools import repeat
from operator import attrgetter, eq
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.interfaces import ExecuteStyle

from pulsegate.context import query_sink
from pulsegate.queries import callsite, eager, forms
from pulsegate.queries.events import (
    QueryEvent,
    ResultToken,
    hook_faults,
    new_event,
    params_identity,
)
from pulsegate.queries.nplusone import register_model_resolver
from pulsegate.sqlalchemy_eager import record_eager
from pulsegate.sqlalchemy_forms import SINGLE

if TYPE_CHECKING:  # imported lazily: sqlalchemy.ext.asyncio needs greenlet, which
    # SQLAlchemy 2.1 no longer installs, and a sync engine must not need it
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_finder = callsite.default_finder
#: Frames from the call-site finder up to the first one worth inspecting: find itself,
#: our listener, then Connection._exec_single_context (or _exec_insertmany_context),
#: Connection._execute_context and the private method that called it
#: (_execute_clauseelement, _exec_driver_sql, _execute_default, ...), which always sit
#: between a listener and any caller (the public Connection.execute & co are above).
#: ``sys._getframe(n)`` jumps them in C without building frame objects.
_SKIP = 5
#: One statement, one parameter set (not ``executemany`` nor an "insertmanyvalues" batch).
_EXECUTE = ExecuteStyle.EXECUTE


# One dialect-level listener per execution path: it runs the statement itself (through
# the dialect's own do_execute*, so dialect overrides still apply) between two clock
# reads. Half the dispatch cost of a before/after pair, and no engine-level events, so
# SQLAlchemy keeps its fast path; with no sink it returns False and SQLAlchemy executes
# the statement as usual.


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    sink = query_sink.get()
    if sink is None or sink.finished:
        return False
    t0 = perf_counter()
    context.dialect.do_execute(cursor, statement, parameters, context)
    now = perf_counter()
    # The hot path (one statement, tuple parameters) is inlined: this runs per statement.
    try:
        # (``execute_style``, not the ``executemany`` property: a Python call a statement)
        if type(parameters) is tuple and context.execute_style is _EXECUTE:
            try:
                phash: int | None = hash(parameters)
            except TypeError:
                phash = hash(repr(parameters))
            rel, kind, source = _orm_load(context) or _NO_LOAD
            site = _finder.find(_SKIP) if sink.call_sites else None
            sink.add_query(new_event((
                statement, (now - t0) * 1000.0, t0, len(parameters), phash, None, site, rel,
                False, context.dialect.name, kind, "sqlalchemy", source)))
            if eager.watching:
                record_eager(sink, context, statement, site)
        else:
            _record(sink, statement, parameters, t0, context, now, _SKIP + 1)
    except Exception as exc:  # fail open: never break the application's query
        _fault(exc)
    return True


def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    sink = query_sink.get()
    if sink is None or sink.finished:
        return False
    t0 = perf_counter()
    context.dialect.do_execute_no_params(cursor, statement, context)
    _record(sink, statement, None, t0, context, perf_counter(), _SKIP + 1)
    return True


def _do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    sink = query_sink.get()
    if sink is None or sink.finished:
        return False
    t0 = perf_counter()
    context.dialect.do_executemany(cursor, statement, parameters, context)
    _record(sink, statement, parameters, t0, context, perf_counter(), _SKIP + 1)
    return True


_NO_LOAD = (None, None, None)

_LISTENERS = (("do_execute", _do_execute), ("do_execute_no_params", _do_execute_no_params),
              ("do_executemany", _do_executemany))


def _record(sink: Any, statement: str, parameters: Any, t0: float, context: Any, now: float,
            depth: int = 3) -> None:
    try:
        # ``executemany`` also covers "insertmanyvalues" batches run one row at a time:
        # the ORM flushing many objects at once is a bulk operation, not a loop.
        many = bool(context.executemany)
        if many:
            phash, pcount = None, None
        else:
            phash, pcount = params_identity(parameters)
        load = _orm_load(context)
        site = _finder.find(depth) if sink.call_sites else None
        sink.add_query(QueryEvent(
            statement, (now - t0) * 1000.0, t0, pcount, phash, None, site,
            load[0] if load is not None else None, many,
            context.dialect.name, load[1] if load is not None else None, "sqlalchemy",
            load[2] if load is not None else None))
        if eager.watching:
            record_eager(sink, context, statement, site)
    except Exception as exc:  # fail open: never break the application's query
        _fault(exc)


def _fault(exc: BaseException) -> None:
    hook_faults.record("sqlalchemy hook", exc)


def _orm_load(context: Any) -> tuple[str, str, Any] | None:
    """What the ORM runs this statement for, read from the execution context the dialect
    hook is given: ``(relationship, load, source)`` for a relationship or column load
    (see :attr:`QueryEvent.load` and ``.source``), None for anything else.

    The same facts ``ORMExecuteState`` gives a ``Session.do_orm_execute`` listener, from
    the same places: the compiled statement's ORM compile options (the loader path of a
    relationship load, the refresh flags of a column load; both part of the statement
    cache key, so the cached compiled statement has the right ones) and the load options
    in the execution options (the instance a lazy load or refresh serves). Reading them
    here, not in a Session listener, keeps every ORM execution on SQLAlchemy's own path:
    a ``do_orm_execute`` listener makes the Session build an ``ORMExecuteState`` and
    re-enter execution for each statement (≈ 350 bytecodes a statement). What the
    compiled statement says is worked out once and kept on it (:func:`_plan`)."""
    compiled = getattr(context, "compiled", None)
    if compiled is None:  # driver SQL (exec_driver_sql, text() is compiled)
        return None
    plan: Any = getattr(compiled, _PLAN, _UNKNOWN)
    if plan is _UNKNOWN:
        plan = _plan(compiled)
        try:
            setattr(compiled, _PLAN, plan)
        except (AttributeError, TypeError):  # None, or a compiled type without a dict
            pass
    if plan is None:
        return None
    name, load, refresh = plan
    load_opts = context.execution_options.get("_sa_orm_load_options")
    if refresh:
        state = getattr(load_opts, "_refresh_state", None)
        return name, load, _remember_origin(state) if state is not None else None
    # selectinload/subqueryload also load relationships, but in batches (500 parents per
    # IN query): only a lazy load, which names the one parent it loads for, is a
    # candidate N+1.
    parent = getattr(load_opts, "_lazy_loaded_from", None)
    if parent is None:
        return name, "batch", None
    return name, load, _origin(parent)


_PLAN = "_pulsegate_orm_load"
_UNKNOWN = object()


def _plan(compiled: Any) -> tuple[str, str, bool] | None:
    """``(name, load, is_column_load)`` of a compiled ORM statement that loads a
    relationship (``("Book.author", "scalar", False)``) or refreshes columns
    (``("Book.summary", "deferred", True)``, ``("Book", "expired", True)``); else None."""
    statement: Any = getattr(compiled, "statement", None)
    opts = getattr(statement, "_compile_options", None)
    path = getattr(opts, "_current_path", None)
    if path is None:  # Core, DML, driver SQL: no ORM compile options
        return None
    if not path.is_root:
        prop = getattr(path, "prop", None)
        if prop is None:
            return None
        return (f"{prop.parent.class_.__name__}.{prop.key}",
                "collection" if prop.uselist else "scalar", False)
    if not getattr(opts, "_for_refresh_state", False):
        return None
    mapper = statement._propagate_attrs.get("plugin_subject")
    if mapper is None:
        return None
    props = sorted(getattr(opts, "_only_load_props", None) or ())
    if 0 < len(props) < len(mapper.column_attrs):
        return f"{mapper.class_.__name__}.{props[0]}", "deferred", True
    return f"{mapper.class_.__name__}", "expired", True


#: runid -> (source, id of the first instance asked about) of the ORM results a lazy load
#: asked about. SQLAlchemy numbers every ORM result (``QueryContext.runid``, unique in
#: the process) and stamps it on each instance it builds (``InstanceState.runid``), so
#: one small map serves every request; cleared past the cap.
_results: dict[int, tuple[tuple[ResultToken, str], int]] = {}
_MAX_RESULTS = 4096
#: The attribute a refreshed ``InstanceState`` keeps the runid of the result that built it
#: in (a refresh of expired attributes stamps its own runid).
_ORIGIN = "_pulsegate_origin"
_RUNID_CLASS = attrgetter("runid", "class_")


def _origin(state: Any) -> tuple[ResultToken, str] | None:
    """Where the instance a lazy load serves came from (:attr:`QueryEvent.source`),
    resolved when the load asks -- nothing is done per loaded row. The result is the
    one whose runid the instance carries; its ``rows`` are the instances of that class
    it built that are still in the session, counted once (in C) at the first lazy load
    that asks, and raised to 2 when a second instance of it asks (a streamed
    ``yield_per`` result builds its rows after the first one's load). None for an
    instance no query built (created, then flushed)."""
    if forms.wanted:  # nplusone's rule: fetched by a single-object form?
        single = state.__dict__.get(SINGLE)
        if single is not None:
            return single  # type: ignore[no-any-return]
    runid = state.__dict__.get(_ORIGIN, _UNSET)
    if runid is _UNSET:
        runid = state.runid
    if runid is None:
        return None
    known = _results.get(runid)
    if known is None:
        token = ResultToken()
        token.rows = _rows(state, runid)
        source = (token, "")
        if len(_results) >= _MAX_RESULTS:
            _results.clear()
        _results[runid] = (source, id(state))
        return source
    source, first = known
    if source[0].rows < 2 and first != id(state):
        source[0].rows = 2
    return source


_UNSET: Any = object()


def _rows(state: Any, runid: int) -> int:
    """Instances of ``state``'s class built by result ``runid`` still in its session."""
    session = state.session
    if session is None:
        return 1
    states = session.identity_map.all_states()
    return list(map(eq, repeat((runid, state.class_)), map(_RUNID_CLASS, states))).count(True)


def _remember_origin(state: Any) -> tuple[ResultToken, str] | None:
    """A refresh is about to give ``state`` its own runid: keep the one of the result
    that built it, and return that result."""
    source = _origin(state)
    if _ORIGIN not in state.__dict__:
        state.__dict__[_ORIGIN] = state.runid
    return source




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
        return Dialect
    if isinstance(engine, Engine):
        return engine.dialect
    # An AsyncEngine can only exist once sqlalchemy.ext.asyncio is imported: never
    # import it here (it needs greenlet).
    asyncio_mod = sys.modules.get("sqlalchemy.ext.asyncio")
    if asyncio_mod is not None and isinstance(engine, asyncio_mod.AsyncEngine):
        return engine.sync_engine.dialect
    return engine.dialect


def instrument(engine: Engine | AsyncEngine | None = None) -> None:
    """Record the statements of ``engine`` (sync or async), or of every engine."""
    target = _target(engine)
    if not is_instrumented(engine):
        for name, fn in _LISTENERS:
            event.listen(target, name, fn)
    register_model_resolver("sqlalchemy", _resolve_model)


def is_instrumented(engine: Engine | AsyncEngine | None = None) -> bool:
    """True when ``engine``'s statements (every engine's, without one) are recorded."""
    if event.contains(Dialect, "do_execute", _do_execute):
        return True
    return engine is not None and bool(event.contains(_target(engine), "do_execute", _do_execute))


def uninstrument(engine: Engine | AsyncEngine | None = None) -> None:
    """Remove the listeners ``instrument(engine)`` added (tests, benchmarks)."""
    target = _target(engine)
    if event.contains(target, "do_execute", _do_execute):
        for name, fn in _LISTENERS:
            event.remove(target, name, fn)

