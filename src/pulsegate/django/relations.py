"""Relationship marks for the Django ORM: what a statement is loading, and for which
instance.

Relationship names come from where Django decides to query, as django-zeal does:

* ``ForwardManyToOneDescriptor.get_object`` (``book.author``, forward one-to-one):
  ``Book.author``, scalar -> ``select_related("author")``;
* ``ReverseOneToOneDescriptor.__get__`` on a cache miss (``author.profile``): scalar;
* related managers (``author.books.all()``, many-to-many both ways, ``GenericRelation``):
  the manager classes Django builds tag their querysets' hints with the relationship and
  the instance's origin, and ``QuerySet._fetch_all`` / ``count`` mark the statement they
  run -> ``prefetch_related("books")`` / ``annotate(Count("books"))``;
* ``GenericForeignKey.__get__`` on a cache miss (``tag.obj``): generic ->
  ``prefetch_related("obj")``;
* ``Model.refresh_from_db(fields=[f])`` (what a deferred field access runs):
  ``Book.title``, deferred; without fields: expired;
* ``prefetch_related_objects([obj], "books")`` for one instance: prefetch (the
  queryset's own prefetching, ``iterator(chunk_size=n)``'s per-chunk prefetch and
  every multi-instance prefetch are batches, never an N+1);
* ``QuerySet.get`` outside any of the above: ``Author.get()`` (django-zeal's rule: a
  ``get`` per item from one line is an N+1); its fetch is told from the others by the
  caller's frame (:func:`_run_by_get`), so ``get`` itself is not wrapped.

Where an instance came from: ``ModelIterable`` tags each instance it builds (and the
objects ``select_related`` joined into it, with their lookup path) with one
:class:`~pulsegate.queries.events.ResultToken` per query, so the detector can tell a
multi-row result from a single load (:mod:`pulsegate.django.origins`); the token also
records the query's form (a one-row slice or ``get()``: single) for nplusone's rule.
Everything here runs only inside a request or ``capture()``; outside, each patched call
costs one ContextVar read.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from contextvars import ContextVar
from types import CodeType
from typing import Any

from pulsegate.context import query_sink, sink_ended
from pulsegate.django.eager import record_queryset
from pulsegate.django.origins import (
    SOURCE,
    one_row,
    record_result,
    release,
    source_of,
    tag_joined,
)
from pulsegate.queries import eager, forms
from pulsegate.queries.events import ResultToken, current_load, hook_faults

__all__ = ["patch_orm", "source_of"]

_HINT = "_pulsegate_rel"
_patched = False
#: True inside Django's own prefetching (a queryset's prefetch_related, an iterator's
#: per-chunk prefetch): those loads are batches.
_in_queryset_prefetch: ContextVar[bool] = ContextVar("pulsegate_in_qs_prefetch", default=False)


def _marked(mark: tuple[str, str, Any], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with ``mark`` in :data:`current_load` for the statements it runs.
    Positional only: a ``**kwargs`` pass-through builds and copies a dict per lazy load
    (≈ 0.4 k instructions); the few callers with keywords pass a ``partial``."""
    sink = query_sink.get()
    if sink is None or sink.finished:
        return fn(*args)
    token = current_load.set(mark)
    try:
        return fn(*args)
    finally:
        current_load.reset(token)


#: Relationship names by what they name (a descriptor, a model), built once: a name
#: formatted per lazy load cost ≈ 1.2 k instructions, and each fresh copy was hashed
#: again by the request-end analysis (its bucket key).
_names: dict[Any, str] = {}


def _field_name(descriptor: Any) -> str:
    """``"Book.author"`` for a forward many-to-one (or one-to-one) descriptor."""
    field = descriptor.field
    name = _names[descriptor] = f"{field.model.__name__}.{field.name}"
    return name


def _accessor_name(descriptor: Any) -> str:
    """``"Author.profile"`` for a reverse one-to-one descriptor."""
    rel = descriptor.related
    name = _names[descriptor] = f"{rel.model.__name__}.{rel.get_accessor_name()}"
    return name


def _get_name(model: Any) -> str:
    """``"Author.get()"``: a ``get()`` nothing else marked (django-zeal's rule)."""
    name = _names[model] = f"{model.__name__}.get()"
    return name


def _patch_iterable() -> None:
    from django.db.models.query import ModelIterable

    model_iter = ModelIterable.__iter__

    def tagging(self: Any) -> Any:
        # A streamed result (``iterator()``, ``aiterator()``): its rows are gone by the
        # time a lazy load asks, so each is tagged as it is built.
        query = self.queryset.query
        token = ResultToken(0, forms.wanted and one_row(query))
        joined = bool(query.select_related)
        source = (token, "")
        for obj in model_iter(self):
            token.rows += 1
            try:
                setattr(obj._state, SOURCE, source)
                if joined:
                    tag_joined(obj, source, "", 1)
            except Exception as exc:  # fail open
                hook_faults.record("django result tag", exc)
            yield obj

    @functools.wraps(model_iter)
    def __iter__(self: Any) -> Any:
        # A queryset's _fetch_all (marked below): its rows are tagged when a lazy load asks.
        if getattr(self.queryset, "_pulsegate_fetching", False):
            return model_iter(self)
        sink = query_sink.get()
        if sink is None or sink.finished:
            return model_iter(self)
        return tagging(self)

    ModelIterable.__iter__ = __iter__  # type: ignore[method-assign]


def _patch_descriptors() -> None:
    from django.db.models.fields import related_descriptors as rd

    fwd_get_object = rd.ForwardManyToOneDescriptor.get_object

    @functools.wraps(fwd_get_object)
    def get_object(self: Any, instance: Any) -> Any:
        return _marked((_names.get(self) or _field_name(self), "scalar", source_of(instance)),
                       fwd_get_object, self, instance)

    rd.ForwardManyToOneDescriptor.get_object = get_object  # type: ignore[method-assign]

    rev_one_get = rd.ReverseOneToOneDescriptor.__get__

    @functools.wraps(rev_one_get)
    def rev_get(self: Any, instance: Any, cls: Any = None) -> Any:
        if instance is None or self.related.is_cached(instance):
            return rev_one_get(self, instance, cls)
        return _marked((_names.get(self) or _accessor_name(self), "scalar",
                        source_of(instance)), rev_one_get, self, instance, cls)

    rd.ReverseOneToOneDescriptor.__get__ = rev_get  # type: ignore[method-assign]

    make_reverse: Any = rd.create_reverse_many_to_one_manager
    make_m2m: Any = rd.create_forward_many_to_many_manager

    @functools.wraps(make_reverse)
    def create_reverse(superclass: Any, rel: Any) -> Any:
        return _tag(make_reverse(superclass, rel), f"{rel.model.__name__}.{rel.get_accessor_name()}")

    @functools.wraps(make_m2m)
    def create_m2m(superclass: Any, rel: Any, reverse: bool) -> Any:
        name = (f"{rel.model.__name__}.{rel.get_accessor_name()}" if reverse
                else f"{rel.field.model.__name__}.{rel.field.name}")
        return _tag(make_m2m(superclass, rel, reverse), name)

    rd.create_reverse_many_to_one_manager = create_reverse
    rd.create_forward_many_to_many_manager = create_m2m


def _tag(cls: Any, name: str) -> Any:
    """Make a related manager class tag its querysets with ``(name, instance origin)``."""
    orig = cls.get_queryset

    @functools.wraps(orig)
    def get_queryset(self: Any) -> Any:
        qs = orig(self)
        if qs._result_cache is None:  # not prefetched
            qs._hints[_HINT] = (name, source_of(getattr(self, "instance", None)))
        return qs

    cls.get_queryset = get_queryset
    return cls


#: The code of Django's ``QuerySet.get`` (set when the marks are installed).
_get_code: CodeType | None = None


def _run_by_get() -> bool:
    """Whether the fetch the patched ``_fetch_all`` runs is ``QuerySet.get``'s: Django's
    ``get`` evaluates its clone by ``len(clone)`` (``QuerySet.__len__`` calls
    ``_fetch_all``), so the frame two above that wrapper is ``get``'s. Read here, where
    every fetch passes anyway, instead of wrapping ``get``: a wrapper's ``*args,
    **kwargs`` pass-through cost ≈ 2 k instructions on every lazy load (each one is a
    ``get``). Call it from the wrapper's own frame only (the depth counts from there)."""
    try:
        return sys._getframe(3).f_code is _get_code
    except ValueError:  # a shallower stack: not get's
        return False


def _patch_queryset() -> None:
    from django.db.models import QuerySet

    fetch_all = QuerySet._fetch_all
    count = QuerySet.count
    global _get_code
    _get_code = inspect.unwrap(QuerySet.get).__code__

    from django.db.models.query import ModelIterable

    @functools.wraps(fetch_all)
    def _fetch_all(self: Any) -> None:
        if self._result_cache is not None:
            return fetch_all(self)  # type: ignore[no-any-return]
        sink = query_sink.get()
        if sink is None or sink.finished:
            return fetch_all(self)  # type: ignore[no-any-return]
        # Marked on the queryset (its ModelIterable's ``queryset``), not in a ContextVar:
        # a ContextVar's set and reset each build a new context and void every
        # variable's cached read -- two per statement.
        self._pulsegate_fetching = True
        first = getattr(sink, "query_count", 0) if eager.watching else 0
        by_get = None  # whether get() runs this fetch: read only when needed
        try:
            hint = self._hints.get(_HINT)
            if current_load.get() is not None:  # a relationship load marked it already
                fetch_all(self)
            elif hint is not None:
                _marked((hint[0], "collection", hint[1]), fetch_all, self)
            elif by_get := _run_by_get():
                model = self.model
                _marked((_names.get(model) or _get_name(model), "get", None), fetch_all, self)
            else:
                fetch_all(self)
        finally:
            del self._pulsegate_fetching
        results = self._result_cache
        if results and issubclass(self._iterable_class, ModelIterable):
            # What ran: the fetch read ``query`` (the property, which applies a deferred
            # filter first) already; the property again is a Python call per statement.
            query = self._query
            # The form (a one-row slice, or get() finding its one row) only matters to
            # nplusone's rule: read only when wanted.
            single = forms.wanted and (one_row(query) or (len(results) == 1 and (
                by_get if by_get is not None else _run_by_get())))
            record_result(sink, results, bool(query.select_related), single)
            if eager.watching:
                record_queryset(sink, self, first)
        return None

    @functools.wraps(count)
    def count_(self: Any) -> int:
        hint = self._hints.get(_HINT) if self._result_cache is None else None
        if hint is not None and current_load.get() is None:
            return _marked((hint[0], "count", hint[1]), count, self)  # type: ignore[no-any-return]
        return count(self)

    QuerySet._fetch_all = _fetch_all  # type: ignore[method-assign]
    QuerySet.count = count_  # type: ignore[method-assign]


def _patch_refresh() -> None:
    from django.db.models import Model

    refresh = Model.refresh_from_db

    @functools.wraps(refresh)
    def refresh_from_db(self: Any, using: Any = None, fields: Any = None, *args: Any,
                        **kwargs: Any) -> None:
        names = list(fields) if fields else []
        if len(names) == 1 and isinstance(names[0], str):
            mark = (f"{type(self).__name__}.{names[0]}", "deferred", source_of(self))
        elif not names:
            mark = (type(self).__name__, "expired", source_of(self))
        else:
            refresh(self, using, fields, *args, **kwargs)
            return
        _marked(mark, functools.partial(refresh, **kwargs) if kwargs else refresh,
                self, using, fields, *args)

    Model.refresh_from_db = refresh_from_db  # type: ignore[method-assign]


def _patch_prefetch() -> None:
    from django.db.models import QuerySet
    from django.db.models import query as query_module

    one_level = query_module.prefetch_one_level

    @functools.wraps(one_level)
    def prefetch_one_level(instances: Any, prefetcher: Any, lookup: Any, level: int) -> Any:
        try:
            attr = lookup.prefetch_through.split("__")[level]
            name = f"{type(instances[0]).__name__}.{attr}" if instances else attr
            if len(instances) == 1 and not _in_queryset_prefetch.get():
                mark = (name, "prefetch", source_of(instances[0]))
            else:
                mark = (name, "batch", None)
        except Exception:
            return one_level(instances, prefetcher, lookup, level)
        return _marked(mark, one_level, instances, prefetcher, lookup, level)

    query_module.prefetch_one_level = prefetch_one_level

    own_prefetch = QuerySet._prefetch_related_objects  # type: ignore[attr-defined]
    module_prefetch = query_module.prefetch_related_objects

    @functools.wraps(own_prefetch)
    def _prefetch_related_objects(self: Any) -> None:
        flag = _in_queryset_prefetch.set(True)
        try:
            own_prefetch(self)
        finally:
            _in_queryset_prefetch.reset(flag)

    @functools.wraps(module_prefetch)
    def chunk_prefetch(*args: Any, **kwargs: Any) -> None:
        # QuerySet._iterator looks this name up in django.db.models.query; application
        # code imports django.db.models.prefetch_related_objects, which stays Django's.
        flag = _in_queryset_prefetch.set(True)
        try:
            module_prefetch(*args, **kwargs)
        finally:
            _in_queryset_prefetch.reset(flag)

    QuerySet._prefetch_related_objects = _prefetch_related_objects  # type: ignore[attr-defined]
    query_module.prefetch_related_objects = chunk_prefetch


def _patch_generic() -> None:
    try:
        from django.contrib.contenttypes import fields as ct_fields
    except Exception:  # contenttypes not installed: nothing to mark
        return
    gfk_get = ct_fields.GenericForeignKey.__get__

    @functools.wraps(gfk_get)
    def gfk_get_(self: Any, instance: Any, cls: Any = None) -> Any:
        if instance is None or self.is_cached(instance):
            return gfk_get(self, instance, cls)
        return _marked((f"{type(instance).__name__}.{self.name}", "generic", source_of(instance)),
                       gfk_get, self, instance, cls)

    ct_fields.GenericForeignKey.__get__ = gfk_get_  # type: ignore[method-assign,assignment]

    make_generic: Any = ct_fields.create_generic_related_manager

    @functools.wraps(make_generic)
    def create_generic(superclass: Any, rel: Any) -> Any:
        return _tag(make_generic(superclass, rel), f"{rel.field.model.__name__}.{rel.field.name}")

    ct_fields.create_generic_related_manager = create_generic


def patch_orm() -> None:
    """Install the marks once (idempotent)."""
    global _patched
    if _patched:
        return
    _patched = True
    sink_ended.append(release)  # an ended sink's untagged rows are let go
    _patch_iterable()
    _patch_descriptors()
    _patch_queryset()
    _patch_refresh()
    _patch_prefetch()
    _patch_generic()
