"""Unused eager loads: a relationship a query loaded eagerly (``selectinload``,
``joinedload``, ``subqueryload``; Django's ``select_related``/``prefetch_related``) that
nothing read before the request or ``capture()``
ended -- the eager load costs a join or a query for nothing; the fix is to remove the
option. Off by default (option ``unused_eager_loads``; ``capture(unused_eager_loads=True)``).

The ORM hook calls :func:`record` when a statement carries eager-loader options, and
:func:`touch` when a tracked relationship attribute is read; :func:`unused` turns what
was loaded and never read into detections when the sink is analysed. A sink's state is
found by the sink's id (the sink object is the one thing a request shares with the
thread pools its code runs in; a ContextVar set there would not come back), in a map
capped at :data:`MAX_SINKS` and emptied as requests finish and captures close (every
sink, once recording is on: a sink that did not ask is forgotten too).

Cost: nothing while no sink asked for it (the hook checks :data:`watching`); once one
did, per statement one attribute read on the cached plan, and per read of a relationship
that some query loaded eagerly (only those are tracked) one ContextVar read and one set
insertion -- see ``docs/dev-notes/issue-17.md``.
"""

from __future__ import annotations

from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.context import query_sink
from pulsegate.queries.fingerprint import FingerprintCache
from pulsegate.queries.nplusone import Detection

__all__ = ["EagerLoad", "detections", "forget", "moved", "record", "touch", "unused", "watch"]

#: True once a gate or a capture asked for unused eager loads: the ORM hooks then record
#: eager loads and track reads (process-wide, as the hooks are; a sink that did not ask
#: reports nothing).
watching = False
MAX_SINKS = 256


class EagerLoad:
    """One eager-loaded relationship in one sink: the option and the statement."""

    __slots__ = ("call_site", "db", "option", "orm", "relationship", "sql")

    def __init__(self, relationship: str, option: str, sql: str, call_site: str | None,
                 db: str | None, orm: str) -> None:
        self.relationship = relationship
        self.option = option
        self.sql = sql
        self.call_site = call_site
        self.db = db
        self.orm = orm


class _SinkLoads:
    __slots__ = ("loads", "sink", "touched")

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        #: attribute key (the hook's choice, e.g. ``id`` of the attribute) -> load
        self.loads: dict[int, EagerLoad] = {}
        self.touched: set[int] = set()


_by_sink: BoundedLRU[int, _SinkLoads] = BoundedLRU(MAX_SINKS)


def watch() -> None:
    """Turn recording on (idempotent)."""
    global watching
    watching = True


def record(sink: Any, key: int, load: EagerLoad) -> None:
    """``sink``'s statement loaded the relationship ``key`` eagerly."""
    state = _by_sink.get(id(sink))
    if state is None or state.sink is not sink:
        state = _SinkLoads(sink)
        _by_sink.put(id(sink), state)
    if key not in state.loads:
        state.loads[key] = load


def touch(key: int) -> None:
    """The relationship ``key`` was read in the current sink."""
    sink = query_sink.get()
    if sink is not None:
        state = _by_sink.get(id(sink))
        if state is not None:
            state.touched.add(key)


def moved(old: Any, new: Any) -> None:
    """What ``old`` recorded is ``new``'s from now on: a job's run (pulsegate.jobs.
    deferred) is the sink while the job runs, and the unit run it hands its statements to
    is the one analysed."""
    state = _by_sink.get(id(old))
    if state is not None and state.sink is old:
        _by_sink.pop(id(old), None)
        state.sink = new
        _by_sink.put(id(new), state)


def unused(sink: Any) -> list[EagerLoad]:
    """The eager loads of ``sink`` nothing has read so far."""
    state = _by_sink.get(id(sink))
    if state is None or state.sink is not sink:
        return []
    return [load for key, load in state.loads.items() if key not in state.touched]


def forget(sink: Any) -> None:
    """``sink`` is done (the request finished, the capture closed)."""
    state = _by_sink.get(id(sink))
    if state is not None and state.sink is sink:
        _by_sink.pop(id(sink), None)


def detections(sink: Any, cache: FingerprintCache) -> list[Detection]:
    """:func:`unused` as ``unused_eager_load`` detections, each with the option to
    remove (``selectinload(Author.books)``), fingerprinted with the caller's ``cache``
    (the gate's or the capture's own)."""
    out = []
    for load in unused(sink):
        fp = cache.get(load.sql, load.db)
        out.append(Detection(
            "unused_eager_load", fp.id, fp.text, 1, 0.0, 0.0, load.call_site,
            load.relationship,
            f"remove {load.option} from this query: nothing read {load.relationship} "
            f"(an eager load the page does not use costs a join or a query)", 0.6, None,
            load.orm))
    return out
