"""Django ORM instrumentation: one ``execute_wrapper`` on every database connection,
plus relationship marks from Django's related descriptors.

``install()`` (called by ``PulseGateConfig.ready()``, and by ``capture()`` when Django is
set up) puts :func:`query_wrapper` first in ``execute_wrappers`` of every connection
already open and of each new one (the ``connection_created`` signal) -- so statements
from sync views run in a thread under ASGI are seen too, since the request's ContextVars
travel with ``sync_to_async``.

What each statement loads (the relationship, and for which instance) comes from
:mod:`pulsegate.django.relations`, which ``install()`` patches in once.

A prefetched or cached relation runs no query and no mark. Outside a request or
``capture()`` each statement costs one ContextVar read.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from pulsegate.context import query_sink
from pulsegate.django.relations import patch_orm
from pulsegate.queries import callsite
from pulsegate.queries.events import current_load, hook_faults, new_event, params_identity
from pulsegate.queries.nplusone import register_model_resolver

__all__ = ["install", "query_wrapper"]

_finder = callsite.default_finder
#: ``(relationship, load, source)`` of a statement no relationship load marked.
_NO_LOAD = (None, None, None)


def query_wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                  context: dict[str, Any]) -> Any:
    """The execute wrapper: time the statement and hand it to the current sink."""
    sink = query_sink.get()
    if sink is None or sink.finished:
        return execute(sql, params, many, context)
    t0 = perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        try:
            ms = (perf_counter() - t0) * 1000.0
            if many:
                phash, pcount = None, None
            elif type(params) is tuple:  # the common case, inlined: this runs per statement
                try:
                    phash, pcount = hash(params), len(params)
                except TypeError:
                    phash, pcount = params_identity(params)
            else:
                phash, pcount = params_identity(params)
            rel, kind, source = current_load.get() or _NO_LOAD
            sink.add_query(new_event((
                sql, ms, t0, pcount, phash, None,
                _finder.find(3) if sink.call_sites else None,  # skip _execute_with_wrappers
                rel, many, getattr(context.get("connection"), "vendor", None), kind,
                "django", source)))
        except Exception as exc:
            hook_faults.record("django query hook", exc)


def _add(connection: Any) -> None:
    wrappers = connection.execute_wrappers
    if not any(w is query_wrapper for w in wrappers):
        # First = outermost; and a later ``with connection.execute_wrapper(w)`` block,
        # which pops the last wrapper on exit, never removes ours.
        wrappers.insert(0, query_wrapper)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _add(connection)


def install() -> None:
    """Instrument every Django connection, now and future; idempotent."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid="pulsegate.queries")
    for conn in connections.all(initialized_only=True):
        _add(conn)
    # The connection of this thread for each alias, even if not yet opened: cheap, and
    # it covers the common single-thread case (tests) before the first connect.
    for alias in connections:
        _add(connections[alias])
    patch_orm()
    register_model_resolver("django", _resolve_model)
    from pulsegate.django.templates import register

    register()  # call sites inside templates name the template line


def _resolve_model(table: str) -> tuple[str, str] | None:
    from django.apps import apps

    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == table:
            return model.__name__, "pk"
    return None
