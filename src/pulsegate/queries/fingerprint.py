r"""SQL fingerprints: the statement's shape with every literal replaced by ``?``.

One pass of one compiled regex tokenises the statement; each token is kept (identifiers
and keywords, lower-cased; quoted identifiers verbatim; punctuation) or redacted
(string/number/boolean literals, bind placeholders ``?``, ``%s``, ``%(x)s``, ``:x``,
``$1`` -> ``?``); comments are dropped (sqlcommenter's per-request ``traceparent`` must
not split one shape into many). Two linear passes then collapse ``IN (?, ?, ...)`` to
``IN (?)`` and multi-row ``VALUES (?, ?), (?, ?), ...`` to ``VALUES (?, ?), ...``.

Linear time on any input: every alternative of the token regex starts with a distinct
character class and its repetitions cannot overlap, and unterminated strings, quoted
identifiers and comments run to the end of the input instead of failing -- so a match
attempt never fails after a long scan and no position is rescanned (no catastrophic
backtracking). The collapse patterns repeat fixed ``", ?"`` units, which is linear too.

``hash`` is the first 64 bits of BLAKE2b over the normalised text, stable across
processes (unlike ``hash()``). Results are cached by the raw statement text in a
bounded LRU (:class:`FingerprintCache`): ORM loops repeat the exact same text, so the
steady-state cost is one dict look-up.

The redacted ``text`` is the only SQL that ever leaves the process.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import NamedTuple

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


_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<lc>--[^\n]*)
    | (?P<bc>/\*(?:[^*]|\*(?!/))*(?:\*/|\Z))
    | (?P<str>[nNeEbBxX]?'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<dq>"(?:[^"]|"")*(?:"|\Z))
    | (?P<bq>`[^`]*(?:`|\Z))
    | (?P<brk>\[[^\]\s]*\])
    | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<word>[^\W\d]\w*)
    | (?P<ph>\?\d*|%(?:\(\w*\))?s|(?<!:):[^\W\d]\w*|\$\d+|@\w+)
    | (?P<cast>::)
    | (?P<op>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERAL_WORDS = frozenset({"true", "false"})
_NO_SPACE_BEFORE = frozenset({",", ")", ".", "::", ";"})
_NO_SPACE_AFTER = frozenset({"(", ".", "::"})
# Keywords keep their space before "(" (``in (?)``, ``values (?)``); function names
# and table names do not (``count(*)``, ``insert into t(a)`` is rare and harmless).
_SPACED_KEYWORDS = frozenset({
    "in", "values", "as", "on", "from", "where", "and", "or", "not", "exists", "join",
    "using", "select", "into", "over", "filter", "within", "when", "then", "else", "by",
    "set", "union", "all", "any", "some", "with", "recursive", "between", "like", "is",
    "case", "returning", "having", "limit", "offset", "lateral", "table"})
_IN_LIST = re.compile(r"\bin \(\?(?:, \?)+\)")
_VALUES_ROWS = re.compile(r"\((\?(?:, \?)*)\)(?:, \(\1\))+")


def normalize(sql: str) -> tuple[str, bool]:
    """The redacted, normalised text of ``sql`` and whether multi-row VALUES collapsed."""
    out: list[str] = []
    append = out.append
    prev = ""
    prev_word = False
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "ws" or kind == "lc" or kind == "bc":
            continue
        if kind == "word":
            tok = m.group().lower()
            if tok in _LITERAL_WORDS:
                tok = "?"
        elif kind == "str" or kind == "num" or kind == "ph":
            tok = "?"
        else:
            tok = m.group()
        if out and tok not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER and not (
                tok == "(" and prev_word and prev not in _SPACED_KEYWORDS):
            append(" ")
        append(tok)
        prev = tok
        prev_word = kind == "word"
    text = "".join(out)
    if "(?" in text:
        text = _IN_LIST.sub("in (?)", text)
        collapsed = _VALUES_ROWS.sub(r"(\1), ...", text)
        multi = collapsed != text
        text = collapsed
    else:
        multi = False
    return text, multi


def _compute(sql: str) -> SQLFingerprint:
    try:
        text, multi = normalize(sql)
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

    Thread-safe: a hit is one look-up plus ``move_to_end`` (each a single C call, atomic
    under the GIL); inserting and evicting take a lock. ``hits`` may under-count by a few
    under heavy thread contention (it is a statistic, not a lock-protected counter)."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = max(1, int(maxsize))
        self._data: OrderedDict[str, SQLFingerprint] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def resize(self, maxsize: int) -> None:
        with self._lock:
            self.maxsize = max(1, int(maxsize))
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get(self, sql: str) -> SQLFingerprint:
        """The fingerprint of ``sql``; never raises."""
        try:
            data = self._data
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
            fp = _compute(sql if isinstance(sql, str) else str(sql))
            with self._lock:
                self.misses += 1
                self._data[sql] = fp
                if len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
            return fp
        except Exception:
            return SQLFingerprint("<unparsed>", 0, "", False)


#: The process-wide cache the detector uses unless given its own.
default_cache = FingerprintCache()


def fingerprint(sql: str) -> SQLFingerprint:
    """The cached fingerprint of ``sql`` (see the module docstring); never raises."""
    return default_cache.get(sql)
