"""Which columns of a wide table the code reads (SQLAlchemy): the evidence a precise
``load_only(...)`` needs for a ``wide_select`` finding.

Sampled, never always on. For each table a ``wide_select`` finding names (at most
``MAX_TABLES``), every ``every`` seconds a window of ``window`` seconds opens in which
the mapped class's column attributes report their reads: each attribute object's class
becomes a subclass whose ``__get__`` records it first (the swap
:mod:`pulsegate.sqlalchemy_eager` does for relationships) and counts a row each time
the reads move to another instance; at the window's end the attributes are plain
``InstrumentedAttribute`` again (no ORM event is added or removed at run time). Cost:
one Python frame per column read of those classes during a window, none outside --
``window / every`` of the time (2 s in 60 by default), only for classes of tables
already found read whole.

Evidence, once the code read ``min_rows`` rows in windows: the columns read at all (the
union over every window and code path, so ``load_only`` of them is safe for each path
that was seen). A read that bypasses the attribute (``obj.__dict__``, the instance
state, a serializer reading ``inspect(obj).dict``) is not seen, and a code path not run
in a window is not either: the advice says so and keeps its confidence below the index
advice's. The SQLAlchemy part is in the adapter :mod:`pulsegate.advisor.orm`
(``SQLAlchemyColumns``).

Django (:mod:`pulsegate.django.columns`): the evidence is kept **per fingerprint** -- the
statement that loaded the instances whose fields were read (``fingerprint_seen``), so two
views loading one model are advised apart; a foreign key whose related table the same
statement joins (``select_related``) is always kept (Django refuses to defer a field it
traverses). The fix names the fields to keep, ``.only(...)``, or the fewer fields to
drop, ``.defer(...)``, whichever list is shorter; the primary key is never named
(Django always loads it). Memory: at most ``MAX_TABLES`` tables and
``MAX_FINGERPRINTS`` (table, fingerprint) pairs, each a set of field names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pulsegate.queries.events import hook_faults

__all__ = ["ColumnReads", "Seen"]

#: Tables sampled at most (findings name tables; a schema has few wide ones).
MAX_TABLES = 16
#: (table, fingerprint) pairs with evidence at most (Django: per statement).
MAX_FINGERPRINTS = 64


@dataclass
class Seen:
    """What the windows saw of one table's mapped class."""

    cls: str
    columns: list[str]
    read: set[str] = field(default_factory=set)
    rows: int = 0
    windows: int = 0
    #: "sqlalchemy" or "django": the fix's form
    orm: str = "sqlalchemy"
    #: Django: the primary key's attname (always loaded, never named in ``.only``)
    pk: str | None = None
    #: Django: foreign-key attname -> the related table (kept when the statement joins it)
    links: dict[str, str] = field(default_factory=dict)


class ColumnReads:
    """The windows' schedule and the evidence; the ORM's part -- which mappers, how reads
    and loads are seen -- is the ``tracker``'s (:class:`pulsegate.advisor.orm.
    SQLAlchemyColumns`, an adapter): ``open(table, seen_for)`` tracks a table's mapped
    classes, ``close(wanted)`` undoes it all and adds what was read."""

    def __init__(self, tracker: Any, *, clock: Callable[[], float] = time.monotonic,
                 window: float = 2.0, every: float = 60.0, min_rows: int = 20) -> None:
        #: the ORM trackers (one, or a list): each ``ready()``, ``open(table, reads)``
        #: and ``close(reads)``
        self.trackers: list[Any] = list(tracker) if isinstance(tracker, list) else [tracker]
        self.clock = clock
        self.window = window
        self.every = every
        self.min_rows = min_rows
        self.wanted: dict[str, Seen | None] = {}
        #: Django's evidence: (table, fingerprint id) -> what the windows saw
        self.by_fingerprint: dict[tuple[str, str], Seen] = {}
        self.open_until: float | None = None
        self.next_at = 0.0
        #: faults of the trackers while opening or closing (each also in hook_faults)
        self.faults = 0

    def want(self, table: str) -> None:
        """Sample ``table``'s mapped class from the next window on."""
        if table not in self.wanted and len(self.wanted) < MAX_TABLES:
            self.wanted[table] = None

    def seen(self, table: str, fingerprint: str | None = None) -> Seen | None:
        """The evidence for ``table`` -- the statement ``fingerprint``'s own first
        (Django), else the table's (SQLAlchemy) -- once ``min_rows`` rows were read in
        windows."""
        found = self.by_fingerprint.get((table, fingerprint or ""))
        if found is None or found.rows < self.min_rows:
            found = self.wanted.get(table)
        return found if found is not None and found.rows >= self.min_rows else None

    def fingerprint_seen(self, table: str, fingerprint: str, cls: str,
                         columns: list[str]) -> Seen | None:
        """The Django tracker's callback at a window's close: the evidence of the
        statement ``fingerprint`` on ``table`` (None past ``MAX_FINGERPRINTS``)."""
        key = (table, fingerprint)
        seen = self.by_fingerprint.get(key)
        if seen is None:
            if table not in self.wanted or len(self.by_fingerprint) >= MAX_FINGERPRINTS:
                return None
            seen = self.by_fingerprint[key] = Seen(cls, columns, orm="django")
        return seen

    def seen_for(self, table: str, cls: str, columns: list[str]) -> Seen:
        """The tracker's callback when it opens a window on ``table``'s class."""
        seen = self.wanted.get(table)
        if seen is None:
            seen = self.wanted[table] = Seen(cls, columns)
        seen.windows += 1
        return seen

    def tick(self, now: float | None = None) -> None:
        """The scheduler's job: close a window that is over, open one when due (only
        once the ORM is imported)."""
        now = self.clock() if now is None else now
        if self.open_until is not None:
            if now >= self.open_until:
                self.close()
            return
        ready = [t for t in self.trackers if t.ready()] if self.wanted else []
        if ready and now >= self.next_at:
            self.next_at = now + self.every
            self.open_until = now + self.window
            for tracker in ready:
                for table in list(self.wanted):
                    try:
                        tracker.open(table, self)
                    except Exception as exc:  # fail open: what it did is undone at close
                        self.fault("advisor column window open", exc)

    def close(self) -> None:
        """End the window: every tracker undoes all it did (each, even if another
        fails)."""
        if self.open_until is not None:
            self.open_until = None
            for tracker in self.trackers:
                try:
                    tracker.close(self)
                except Exception as exc:
                    self.fault("advisor column window close", exc)

    def fault(self, where: str, exc: BaseException) -> None:
        self.faults += 1
        hook_faults.record(where, exc)


def refine(finding: Any, reads: ColumnReads, tables: Collection[str] = ()) -> Any:
    """A ``wide_select`` finding made precise by what the windows saw (the others as
    they are): the columns read, confidence 0.6; None when the code read every column
    (nothing to advise). ``tables``: the tables the statement reads (a Django foreign
    key to one of them is kept: ``select_related`` traverses it)."""
    if finding.kind != "wide_select" or finding.table is None:
        return finding
    reads.want(finding.table)
    seen = reads.seen(finding.table, finding.fingerprint)
    if seen is None:
        return finding
    read = seen.read | {k for k, t in seen.links.items() if t in tables}
    if seen.pk is not None:
        read.add(seen.pk)  # Django loads it whatever the queryset says
    if read >= set(seen.columns):
        return None
    cols = [k for k in seen.columns if k in read]
    if seen.orm == "django":
        finding.fix = django_fix(seen.cls, cols, seen.columns, seen.pk)
        via = "the field descriptors, for the instances this statement loaded"
        bypass = "obj.__dict__, of instances loaded before a window"
    else:
        finding.fix = ("SQLAlchemy: .options(load_only("
                       f"{', '.join(f'{seen.cls}.{k}' for k in cols)}))")
        via, bypass = "the attributes", "obj.__dict__ or the instance state"
    finding.evidence += (f"; sampled: over {seen.rows} rows read in {seen.windows} windows "
                         f"the code read {len(cols)} of its {len(seen.columns)} columns "
                         f"through {via} (reads of {bypass}, and code paths not run in a "
                         f"window, are not seen)")
    finding.columns = cols
    finding.confidence = 0.6
    return finding


def django_fix(cls: str, keep: list[str], columns: list[str], pk: str | None) -> str:
    """``.only(...)`` of the fields read, or ``.defer(...)`` of the others when that list
    is shorter (the primary key is loaded by Django either way: never named).

    >>> django_fix("Book", ["id", "title", "year"], ["id", "title", "year", "body"], "id")[:36]
    'Django: Book queryset .defer("body")'
    """
    named = [k for k in keep if k != pk]
    drop = [k for k in columns if k not in keep and k != pk]
    how = (f'.defer({", ".join(map(_q, drop))})' if len(drop) < len(named)
           else f'.only({", ".join(map(_q, named))})')
    return (f"Django: {cls} queryset {how} (or .values(...) of the fields read where no "
            f"model instance is needed)")


def _q(name: str) -> str:
    return f'"{name}"'
