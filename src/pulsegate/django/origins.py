"""Where a Django model instance came from: the result that built it, for the structural
N+1 rule (:attr:`~pulsegate.queries.QueryEvent.source`).

``ModelIterable`` (patched in :mod:`pulsegate.django.relations`) tags each instance it
streams, and the objects ``select_related`` joined into it with their lookup path, with
one :class:`~pulsegate.queries.events.ResultToken` per query; a queryset fetched whole
is only recorded, and tagged when a lazy load first asks (:func:`source_of`). A token
also carries the query's *form* (``single``: ``get()``, a one-row slice), which
nplusone's rule judges by (:mod:`pulsegate.queries.forms`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pulsegate.context import query_sink
from pulsegate.queries.events import ResultToken, hook_faults

__all__ = ["SOURCE", "one_row", "record_result", "source_of", "tag_joined"]

#: The attribute of ``instance._state`` that holds ``(token, lookup path)``.
SOURCE = "_pulsegate_source"


def source_of(instance: Any) -> tuple[ResultToken, str] | None:
    """The ``(result token, lookup path)`` an instance was tagged with, or None. Results
    a queryset fetched whole are tagged only now, when a lazy load first asks
    (:func:`record_result`)."""
    state = getattr(instance, "_state", None)
    if state is None:
        return None
    source = getattr(state, SOURCE, None)
    if source is None:
        pending = _pending.get()
        if pending is not None and pending.results and pending.sink is query_sink.get():
            tag_pending(pending)
            source = getattr(state, SOURCE, None)
    return source


#: The results the current sink's querysets fetched whole and nobody has asked about
#: yet (:class:`_Pending`). Tagging them costs one attribute per row,
#: so it waits until a lazy load asks where an instance came from -- a page without a
#: lazy load pays one list append per query. Keyed by the sink: a new request (or
#: ``capture()``) starts afresh.
_pending: ContextVar[_Pending | None] = ContextVar(
    "pulsegate_pending_results", default=None)
#: At most this many rows wait to be tagged per sink; beyond, results are tagged at once
#: (memory held for the application's instances stays bounded).
_MAX_PENDING_ROWS = 10_000


def tag_result(results: list[Any], joined: bool, single: bool) -> None:
    """Tag every instance of one result (and what ``select_related`` joined into it)."""
    source = (ResultToken(len(results), single), "")
    try:
        for obj in results:
            setattr(obj._state, SOURCE, source)
            if joined:
                tag_joined(obj, source, "", 1)
    except Exception as exc:  # fail open
        hook_faults.record("django result tag", exc)


def tag_pending(pending: _Pending) -> None:
    for results, joined, single in pending.results:
        tag_result(results, joined, single)
    pending.results.clear()
    pending.rows = 0


def record_result(sink: Any, results: list[Any], joined: bool, single: bool) -> None:
    """Keep a fetched result for tagging when a lazy load asks (:func:`source_of`);
    ``single``: fetched by a single-object form (:mod:`pulsegate.queries.forms`)."""
    current = _pending.get()
    if current is None or current.sink is not sink:
        current = _Pending(sink)
        _pending.set(current)
    current.rows += len(results)
    if current.rows > _MAX_PENDING_ROWS:
        tag_pending(current)
        tag_result(results, joined, single)
    else:
        current.results.append((results, joined, single))


class _Pending:
    """The results one sink fetched whole that no lazy load has asked about yet."""

    __slots__ = ("results", "rows", "sink")

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.rows = 0
        self.results: list[tuple[list[Any], bool, bool]] = []


def release(sink: Any) -> None:
    """``sink`` ended (:data:`pulsegate.context.sink_ended`): no lazy load of its will ask
    any more, so its untagged results are let go -- the rows, and the sink with them."""
    pending = _pending.get()
    if pending is not None and pending.sink is sink:
        _pending.set(None)


def one_row(query: Any) -> bool:
    """A one-row slice (``first()``, ``last()``, ``qs[0]``, ``qs[:1]``): a single-object
    form, as nplusone judges (its ``is_single``: high mark minus low mark is 1)."""
    high = query.high_mark
    return high is not None and high - query.low_mark == 1


def tag_joined(obj: Any, source: tuple[ResultToken, str], path: str, depth: int) -> None:
    """Tag the objects ``select_related`` joined into ``obj`` (not already tagged: known
    related objects came from an earlier query) with their lookup path."""
    for name, child in obj._state.fields_cache.items():
        state = getattr(child, "_state", None)
        if state is None or getattr(state, SOURCE, None) is not None:
            continue
        child_path = f"{path}__{name}" if path else name
        setattr(state, SOURCE, (source[0], child_path))
        if depth < 3:
            tag_joined(child, source, child_path, depth + 1)
