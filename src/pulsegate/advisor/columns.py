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
advice's. Django models have no per-field descriptor for loaded values: not sampled. The
SQLAlchemy part is in the adapter :mod:`pulsegate.advisor.orm` (``SQLAlchemyColumns``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ColumnReads", "Seen"]

#: Tables sampled at most (findings name tables; a schema has few wide ones).
MAX_TABLES = 16


@dataclass
class Seen:
    """What the windows saw of one table's mapped class."""

    cls: str
    columns: list[str]
    read: set[str] = field(default_factory=set)
    rows: int = 0
    windows: int = 0


class ColumnReads:
    """The windows' schedule and the evidence; the ORM's part -- which mappers, how reads
    and loads are seen -- is the ``tracker``'s (:class:`pulsegate.advisor.orm.
    SQLAlchemyColumns`, an adapter): ``open(table, seen_for)`` tracks a table's mapped
    classes, ``close(wanted)`` undoes it all and adds what was read."""

    def __init__(self, tracker: Any, *, clock: Callable[[], float] = time.monotonic,
                 window: float = 2.0, every: float = 60.0, min_rows: int = 20) -> None:
        self.tracker = tracker
        self.clock = clock
        self.window = window
        self.every = every
        self.min_rows = min_rows
        self.wanted: dict[str, Seen | None] = {}
        self.open_until: float | None = None
        self.next_at = 0.0

    def want(self, table: str) -> None:
        """Sample ``table``'s mapped class from the next window on."""
        if table not in self.wanted and len(self.wanted) < MAX_TABLES:
            self.wanted[table] = None

    def seen(self, table: str) -> Seen | None:
        """The evidence for ``table``, once ``min_rows`` rows were read in windows."""
        found = self.wanted.get(table)
        return found if found is not None and found.rows >= self.min_rows else None

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
        if self.wanted and now >= self.next_at and "sqlalchemy.orm" in sys.modules:
            self.next_at = now + self.every
            self.open_until = now + self.window
            for table in list(self.wanted):
                self.tracker.open(table, self.seen_for)

    def close(self) -> None:
        if self.open_until is not None:
            self.tracker.close(self.wanted)
            self.open_until = None


def refine(finding: Any, reads: ColumnReads) -> Any:
    """A ``wide_select`` finding made precise by what the windows saw (the others as
    they are): ``load_only`` of the columns read, confidence 0.6; None when the code
    read every column (nothing to advise)."""
    if finding.kind != "wide_select" or finding.table is None:
        return finding
    reads.want(finding.table)
    seen = reads.seen(finding.table)
    if seen is None:
        return finding
    if seen.read >= set(seen.columns):
        return None
    cols = [k for k in seen.columns if k in seen.read]
    finding.fix = f"SQLAlchemy: .options(load_only({', '.join(f'{seen.cls}.{k}' for k in cols)}))"
    finding.evidence += (f"; sampled: over {seen.rows} rows read in {seen.windows} windows "
                         f"the code read {len(cols)} of its {len(seen.columns)} columns "
                         f"through the attributes (reads of obj.__dict__ or the instance "
                         f"state, and code paths not run in a window, are not seen)")
    finding.columns = cols
    finding.confidence = 0.6
    return finding
