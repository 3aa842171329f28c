"""Django ORM instrumentation: one ``execute_wrapper`` on every database connection,
plus relationship marks from Django's related descriptors.

``install()`` (called by ``PulseGateConfig.ready()``, and by ``capture()`` when Django is
set up) puts :func:`query_wrapper` first in ``execute_wrappers`` of every connection
already open and of each new one (the ``connection_created`` signal) -- so statements
from sync views run in a thread under ASGI are seen too, since the request's ContextVars
travel with ``sync_to_async``.

Relationship names come from where Django decides to query, as django-zeal does:

* ``ForwardManyToOneDescriptor.get_object`` (``book.author``, forward one-to-one):
  ``Book.author``, scalar -> ``select_related("author")``;
* ``ReverseOneToOneDescriptor.__get__`` on a cache miss (``author.profile``): scalar;
* related managers (``author.books.all()``, many-to-many both ways): the manager classes
  Django builds tag their querysets' hints with the relationship, and
  ``QuerySet._fetch_all`` / ``count`` mark the statement they run ->
  ``prefetch_related("books")`` / ``annotate(Count("books"))``;
* ``Model.refresh_from_db(fields=[f])`` (what a deferred field access runs):
  ``Book.title``, deferred.

A prefetched or cached relation runs no query and no mark. Outside a request or
``capture()`` each statement costs one ContextVar read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import perf_counter
from typing import Any

from pulsegate.context import query_sink
from pulsegate.queries import callsite
from pulsegate.queries.events import current_load, hook_faults, new_event, params_identity
from pulsegate.queries.nplusone import register_model_resolver

__all__ = ["install", "query_wrapper"]

_HINT = "_pulsegate_rel"
_finder = callsite.default_finder
_patched = False


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
            load = current_load.get()
            conn = context.get("connection")
            sink.add_query(new_event((
                sql, ms, t0, pcount, phash, None,
                _finder.find(3) if callsite.enabled else None,  # skip _execute_with_wrappers
                load[0] if load is not None else None, many,
                getattr(conn, "vendor", None), load[1] if load is not None else None,
                "django")))
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
    _patch_orm()
    register_model_resolver("django", _resolve_model)
    from pulsegate.django.templates import register

    register()  # call sites inside templates name the template line


def _resolve_model(table: str) -> tuple[str, str] | None:
    from django.apps import apps

    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == table:
            return model.__name__, "pk"
    return None


# --- relationship marks ------------------------------------------------------------------


def _marked(mark: tuple[str, str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    sink = query_sink.get()
    if sink is None or sink.finished:
        return fn(*args, **kwargs)
    token = current_load.set(mark)
    try:
        return fn(*args, **kwargs)
    finally:
        current_load.reset(token)


def _patch_orm() -> None:
    global _patched
    if _patched:
        return
    _patched = True
    from django.db.models import Model, QuerySet
    from django.db.models.fields import related_descriptors as rd

    fwd_get_object = rd.ForwardManyToOneDescriptor.get_object

    @functools.wraps(fwd_get_object)
    def get_object(self: Any, instance: Any) -> Any:
        f = self.field
        return _marked((f"{f.model.__name__}.{f.name}", "scalar"), fwd_get_object, self, instance)

    rd.ForwardManyToOneDescriptor.get_object = get_object  # type: ignore[method-assign]

    rev_one_get = rd.ReverseOneToOneDescriptor.__get__

    @functools.wraps(rev_one_get)
    def rev_get(self: Any, instance: Any, cls: Any = None) -> Any:
        if instance is None or self.related.is_cached(instance):
            return rev_one_get(self, instance, cls)
        rel = self.related
        return _marked((f"{rel.model.__name__}.{rel.get_accessor_name()}", "scalar"),
                       rev_one_get, self, instance, cls)

    rd.ReverseOneToOneDescriptor.__get__ = rev_get  # type: ignore[method-assign]

    make_reverse: Any = rd.create_reverse_many_to_one_manager
    make_m2m: Any = rd.create_forward_many_to_many_manager

    def tag(cls: Any, name: str) -> Any:
        orig = cls.get_queryset

        @functools.wraps(orig)
        def get_queryset(self: Any) -> Any:
            qs = orig(self)
            if qs._result_cache is None:  # not prefetched
                qs._hints[_HINT] = name
            return qs

        cls.get_queryset = get_queryset
        return cls

    @functools.wraps(make_reverse)
    def create_reverse(superclass: Any, rel: Any) -> Any:
        return tag(make_reverse(superclass, rel), f"{rel.model.__name__}.{rel.get_accessor_name()}")

    @functools.wraps(make_m2m)
    def create_m2m(superclass: Any, rel: Any, reverse: bool) -> Any:
        name = (f"{rel.model.__name__}.{rel.get_accessor_name()}" if reverse
                else f"{rel.field.model.__name__}.{rel.field.name}")
        return tag(make_m2m(superclass, rel, reverse), name)

    rd.create_reverse_many_to_one_manager = create_reverse
    rd.create_forward_many_to_many_manager = create_m2m

    fetch_all = QuerySet._fetch_all
    count = QuerySet.count

    @functools.wraps(fetch_all)
    def _fetch_all(self: Any) -> None:
        if self._result_cache is None:
            name = self._hints.get(_HINT)
            if name is not None:
                return _marked((name, "collection"), fetch_all, self)  # type: ignore[no-any-return]
        fetch_all(self)

    @functools.wraps(count)
    def count_(self: Any) -> int:
        name = self._hints.get(_HINT) if self._result_cache is None else None
        if name is not None:
            return _marked((name, "count"), count, self)  # type: ignore[no-any-return]
        return count(self)

    QuerySet._fetch_all = _fetch_all  # type: ignore[method-assign]
    QuerySet.count = count_  # type: ignore[method-assign]

    refresh = Model.refresh_from_db

    @functools.wraps(refresh)
    def refresh_from_db(self: Any, using: Any = None, fields: Any = None, *args: Any,
                        **kwargs: Any) -> None:
        if fields:
            names = list(fields)
            if len(names) == 1 and isinstance(names[0], str):
                _marked((f"{type(self).__name__}.{names[0]}", "deferred"), refresh, self, using,
                        fields, *args, **kwargs)
                return
        refresh(self, using, fields, *args, **kwargs)

    Model.refresh_from_db = refresh_from_db  # type: ignore[method-assign]
