"""What the SQL hooks record: one :class:`QueryEvent` per statement executed."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from pulsegate.faults import FaultCounter


class ResultToken:
    """One ORM query's result: every instance it built points at the same token, and
    ``rows`` counts them as they are built (an ``iterator()`` streams them), so by the
    time a request is analysed a token with ``rows >= 2`` is a multi-row result -- the
    ground an N+1 grows on -- and one with ``rows == 1`` a single load (``get``,
    ``first``, ``[0]``).

    ``single`` is the query's *form*, which nplusone's rule judges by (option
    ``single_lazy_loads``): True when it was fetched by a single-object form (Django
    ``get()`` or a one-row slice -- ``first()``, ``[0]``; SQLAlchemy ``first()``,
    ``one()``, ``one_or_none()``, ``scalar*()``, ``session.get``), False for a list
    form (``.all()``, iteration, ``.scalars()``) even when it returned one row."""

    __slots__ = ("rows", "single")

    def __init__(self, rows: int = 0, single: bool = False) -> None:
        self.rows = rows
        self.single = single

    def __repr__(self) -> str:
        return f"ResultToken(rows={self.rows}, single={self.single})"


class QueryEvent(NamedTuple):
    """One SQL statement as executed (immutable; build it with keywords).

    ``sql`` is the raw statement text as the driver saw it; it never leaves the process
    (only its redacted fingerprint does). ``params_hash`` identifies the parameter values
    so identical repeats can be told apart from same-shape repeats without keeping the
    values. ``relationship`` is set when the ORM says the statement loads a relationship
    (``"Author.books"``); ``call_site`` is ``"path:line in function"`` of the first
    application frame. ``load`` says what the ORM was doing when it knows:
    ``"collection"`` / ``"scalar"`` (a lazy relationship load), ``"deferred"`` (a
    deferred or expired column load), ``"count"`` (a related manager's count) or
    None; ``orm`` is ``"sqlalchemy"``, ``"django"`` or None (spans, raw DB-API).
    ``many`` marks an ``executemany`` (a bulk write, never a loop by itself).
    ``source`` says where the instance a lazy load serves came from:
    ``(ResultToken, path)`` -- the result that built it and the lookup path from that
    result's model (``""``, or ``"author"`` for an object joined by ``select_related``)
    -- or None when unknown (objects created without a query, raw SQL).

    A NamedTuple rather than a dataclass because a request may record thousands: the
    hooks build it with one ``tuple.__new__`` (see :func:`new_event`), and a tuple of
    strings and numbers is untracked by the garbage collector after its first pass, so
    a long request's events cost no repeated GC scans.
    """

    sql: str
    duration_ms: float
    started_at: float = 0.0
    params_count: int | None = None
    params_hash: int | None = None
    rows: int | None = None
    call_site: str | None = None
    relationship: str | None = None
    many: bool = False
    db: str | None = None
    load: str | None = None
    orm: str | None = None
    source: tuple[ResultToken, str] | None = None


#: ``new_event(fields)``: a QueryEvent from all thirteen fields in order, without the
#: keyword machinery of the generated constructor (the hooks' hot path). A ``partial``
#: of ``tuple.__new__`` runs in C: no Python frame per statement.
new_event: Callable[[tuple[Any, ...]], QueryEvent] = partial(tuple.__new__, QueryEvent)


#: Set by the ORM adapters around a statement the ORM runs on behalf of a relationship
#: or deferred-column load: ``(relationship, load, source)``, e.g. ``("Author.books",
#: "collection", (token, ""))`` (see :attr:`QueryEvent.source`). The statement hook
#: stamps it on the event.
current_load: contextvars.ContextVar[
    tuple[str, str, tuple[ResultToken, str] | None] | None] = contextvars.ContextVar(
    "pulsegate_current_load", default=None)


def params_identity(params: object) -> tuple[int | None, int | None]:
    """``(params_hash, params_count)`` of DB-API parameters without keeping the values:
    a tuple/list/dict of parameters hashes in well under a microsecond; anything
    unhashable falls back to its ``repr``."""
    if params is None:
        return None, 0
    try:
        if isinstance(params, dict):
            return hash(tuple(params.values())), len(params)
        if isinstance(params, (tuple, list)):
            return hash(tuple(params)), len(params)
        return hash(params), None
    except TypeError:
        try:
            return hash(repr(params)), len(params) if isinstance(params, (tuple, list, dict)) else None
        except Exception:
            return None, None


#: Faults inside the ORM hooks (which run outside any engine call): counted and logged
#: once per kind; the gate reports them in ``stats()["internal_errors_by_kind"]``.
hook_faults = FaultCounter()
