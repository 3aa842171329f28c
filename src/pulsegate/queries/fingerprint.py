r"""SQL fingerprints: the statement's shape with every literal replaced by ``?``.

:func:`pulsegate.queries.sqlscan.scan` reads the statement once, in the quoting rules of
its database (the ORM's dialect name), and keeps only keywords and identifiers
(lower-cased; quoted identifiers verbatim), operators and placeholders (as ``?``);
literals and anything it cannot classify become ``?``, comments are dropped
(sqlcommenter's per-request ``traceparent`` must not split one shape into many), and
where the dialect's readings disagree the rest of the statement folds into one ``?``.
Two linear passes then collapse ``IN (?, ?, ...)`` to ``IN (?)`` and multi-row
``VALUES (?, ?), (?, ?), ...`` to ``VALUES (?, ?), ...``. Time is linear in the
statement and bounded per statement (only the first ``MAX_SCAN`` characters are read).

``hash`` is the first 64 bits of BLAKE2b over the normalised text, stable across
processes (unlike ``hash()``). Results are cached by the raw statement text and dialect
in a bounded LRU (:class:`FingerprintCache`): ORM loops repeat the exact same text, so
the steady-state cost is one dict look-up.

The redacted ``text`` is the only SQL that ever leaves the process.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import NamedTuple

from pulsegate.queries.sqlscan import MAX_SCAN, rules_for, scan

__all__ = ["FingerprintCache", "SQLFingerprint", "default_cache", "fingerprint", "normalize"]


class SQLFingerprint(NamedTuple):
    """``text``: the redacted, normalised statement; ``hash``: 64-bit id of ``text``;
    ``verb``: its first keyword (``select``, ``insert``, ``update``, ``delete``, ``with``,
    ...), ``""`` when there is none; ``multi_row``: a multi-row ``VALUES`` was collapsed."""

    text: str
    hash: int
    verb: str
    multi_row: bool

    @property
    def id(self) -> str:
        """The hash as 16 hex digits (what logs, headers and the dashboard show)."""
        return f"{self.hash:016x}"


_IN_LIST = re.compile(r"\bin \(\?(?:, \?)+\)")
# A list the length cap cut short: ``in (?, ?, ?, ...`` (the scanner's tail marker).
_IN_TAIL = re.compile(r"\bin \(\?(?:, \?)*,? \.\.\.$")
_VALUES_ROWS = re.compile(r"\((\?(?:, \?)*)\)(?:, \(\1\))+")


def normalize(sql: str, dialect: str | None = None) -> tuple[str, bool]:
    """The redacted, normalised text of ``sql`` and whether multi-row VALUES collapsed.

    ``dialect`` is the ORM's name for the database (``"postgresql"``, ``"mysql"``,
    ``"sqlite"``, ``"mssql"``, ...); without it the scanner follows every dialect's
    quoting at once and folds whatever they disagree on.

    >>> normalize("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'")
    ('select * from t where id in (?) and name = ?', False)
    """
    text = "".join(scan(sql, rules_for(dialect)))
    if "(?" in text:
        text = _IN_LIST.sub("in (?)", text)
        text = _IN_TAIL.sub("in (?, ...", text)
        collapsed = _VALUES_ROWS.sub(r"(\1), ...", text)
        multi = collapsed != text
        text = collapsed
    else:
        multi = False
    return text, multi


def _compute(sql: str, dialect: str | None = None) -> SQLFingerprint:
    try:
        text, multi = normalize(sql, dialect)
    except Exception:  # never raises: fall back to an opaque shape of the raw text
        text, multi = f"<unparsed {len(sql)} chars>", False
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest()
    verb = ""
    for word in text.split(" ", 2)[:2]:
        if word.isalpha():
            verb = word
            break
    return SQLFingerprint(text, int.from_bytes(digest, "big"), verb, multi)


class FingerprintCache:
    """Bounded LRU of raw statement text -> :class:`SQLFingerprint`, with hit counters.
    A statement is keyed by what the scanner reads of it, its first ``MAX_SCAN + 1``
    characters: an entry's size never grows with the statement's.

    One text may redact differently per dialect (``"x"`` is a name in PostgreSQL, a
    string in MySQL), so entries live in one LRU table per dialect family; ``maxsize``
    bounds all tables together (an insert past it evicts the oldest entry of its own
    table, or of the largest other one when its own holds only the new entry).

    Thread-safe: a hit is two look-ups plus ``move_to_end`` (each a single C call,
    atomic under the GIL); inserting and evicting take a lock. ``hits`` may under-count
    by a few under heavy thread contention (it is a statistic, not a lock-protected
    counter)."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = max(1, int(maxsize))
        #: dialect family -> LRU table; ``_by_name`` maps the names callers pass to them
        self._tables: dict[str, OrderedDict[str, SQLFingerprint]] = {}
        self._by_name: dict[str | None, OrderedDict[str, SQLFingerprint]] = {}
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return self._size

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def resize(self, maxsize: int) -> None:
        with self._lock:
            self.maxsize = max(1, int(maxsize))
            self._evict(None)

    def _table(self, dialect: str | None) -> OrderedDict[str, SQLFingerprint]:
        family = rules_for(dialect).name
        with self._lock:
            table = self._tables.get(family)
            if table is None:
                table = self._tables[family] = OrderedDict()
            if len(self._by_name) < 64:  # names come from ORMs: a handful
                self._by_name[dialect] = table
        return table

    def _evict(self, own: OrderedDict[str, SQLFingerprint] | None) -> None:
        while self._size > self.maxsize:
            table = own if own is not None and len(own) > 1 else max(
                self._tables.values(), key=len)
            table.popitem(last=False)
            self._size -= 1

    def get(self, sql: str, dialect: str | None = None) -> SQLFingerprint:
        """The fingerprint of ``sql`` as ``dialect`` quotes it (see :func:`normalize`);
        never raises."""
        try:
            data = self._by_name.get(dialect)
            if data is None:
                data = self._table(dialect)
            if isinstance(sql, str) and len(sql) > MAX_SCAN:
                sql = sql[:MAX_SCAN + 1]  # all the scan reads: the key is no longer
            fp = data.get(sql)
            if fp is not None:
                # OrderedDict's get/move_to_end are single C calls, atomic under the GIL:
                # the hit path needs no lock (a key evicted in between is just a KeyError).
                try:
                    data.move_to_end(sql)
                except KeyError:
                    pass
                self.hits += 1
                return fp
            fp = _compute(sql if isinstance(sql, str) else str(sql), dialect)
            with self._lock:
                self.misses += 1
                if sql not in data:
                    self._size += 1
                data[sql] = fp
                self._evict(data)
            return fp
        except Exception:
            return SQLFingerprint("<unparsed>", 0, "", False)


#: The process-wide cache the detector uses unless given its own.
default_cache = FingerprintCache()


def fingerprint(sql: str, dialect: str | None = None) -> SQLFingerprint:
    """The cached fingerprint of ``sql`` as ``dialect`` quotes it (see the module
    docstring); never raises."""
    return default_cache.get(sql, dialect)
