"""What the SQL hooks record: one :class:`QueryEvent` per statement executed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class QueryEvent:
    """One SQL statement as executed.

    ``sql`` is the raw statement text as the driver saw it; it never leaves the process
    (only its redacted fingerprint does). ``params_hash`` identifies the parameter values
    so identical repeats can be told apart from same-shape repeats without keeping the
    values. ``relationship`` is set when the ORM says the statement loads a relationship
    (``"Author.books"``); ``call_site`` is ``"path:line in function"`` of the first
    application frame.
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
