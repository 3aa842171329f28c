r"""Query-pattern detection over one request's (or one ``capture()``'s) SQL events.

Statements are grouped by ``(fingerprint, relationship or call site)``: the ORM's own
word when it gave one (``Author.books``), else the application line that ran them, else
the shape alone (events converted from spans carry only SQL and timings). Transaction
control (``BEGIN``, ``SAVEPOINT``, ``PRAGMA``, ...) is ignored. Each group is then one
of:

* ``n_plus_one`` / ``single_load_loop`` -- a relationship lazily loaded for two or more
  instances of one multi-row result (or of singly loaded ones) from one call site: the
  structural rule of :mod:`pulsegate.queries.structural`, which decides about every lazy
  load whose parent's origin the ORM hook knows, whatever the loop's length;
* ``n_plus_one`` -- otherwise (raw SQL, spans, other drivers), a read shape run
  :math:`n \ge` ``min_repeats`` times with different parameters (or unknown ones) from
  one place -- except batched loads: an ORM eager loader's batches (SQLAlchemy
  ``selectinload`` over thousands of parents) and ``IN (...)`` shapes with 20 or more
  parameters per statement on average;
* ``repeated_query`` -- the identical read (same text, same parameters) run
  :math:`n \ge` ``repeated_min`` times: run it once and reuse the result;
* ``write_loop`` -- a single-row ``INSERT``/``UPDATE``/``DELETE`` of one shape run
  :math:`n \ge` ``write_min`` times (``executemany``, multi-row ``VALUES``, ``CASE``
  updates and statements with 20 or more parameters on average are bulk operations
  already -- ``bulk_update`` and chunked deletes in batches -- and never count).

A group is reported only when its total time reaches ``min_duration_ms`` (0 by default:
fast N+1s on SQLite in CI count).

Confidence, in [0, 1], is a weighted mean of four signals:

.. math::

   c = 0.4\,r + 0.2\,v + 0.2\,a + 0.2\,s,\qquad
   r = \min\!\left(1, \frac{n}{2\,n_{min}}\right),\;
   v = \begin{cases} d/n & \text{n+1, parameters known} \\ 1 & \text{repeated query or write loop} \\
   0.5 & \text{unknown}\end{cases},\;
   a = \begin{cases} 1 & \text{relationship named by the ORM} \\ 0.8 & \text{one call site} \\
   0.5 & \text{no call site}\end{cases},\;
   s = \frac{t_{group}}{t_{all}}

where :math:`d` is the number of distinct parameter sets, :math:`n_{min}` the kind's
threshold, and :math:`s` the group's share of all query time (its share of the
statements when no durations are known). An N+1 that follows the query that loaded the
list (a different shape earlier in the request) gets :math:`+0.1`, capped at 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from operator import itemgetter
from typing import Any

from pulsegate.queries import forms
from pulsegate.queries.events import QueryEvent
from pulsegate.queries.fingerprint import FingerprintCache, SQLFingerprint, default_cache
from pulsegate.queries.structural import LazyGroup, is_structural, single_load_fix
from pulsegate.queries.suggestions import register_model_resolver, suggest, table_of

__all__ = ["Analysis", "Detection", "NPlusOneDetector", "register_model_resolver", "suggest",
           "table_of"]

KINDS = ("n_plus_one", "single_load_loop", "repeated_query", "write_loop", "unused_eager_load")
_SKIP_VERBS = frozenset({"", "begin", "commit", "rollback", "savepoint", "release", "set",
                         "pragma", "show", "start", "end", "reset", "discard", "use",
                         "deallocate", "prepare", "listen", "notify", "vacuum", "analyze"})
_WRITE_VERBS = frozenset({"insert", "update", "delete", "replace", "upsert", "merge"})
_MISSING: Any = object()
#: What makes statements one bucket of :meth:`NPlusOneDetector.run`: text, database,
#: relationship, call site, load and ORM (fields of :class:`QueryEvent`).
_BUCKET = itemgetter(0, 9, 7, 6, 10, 11)
_MS, _PCOUNT, _PHASH, _MANY = itemgetter(1), itemgetter(3), itemgetter(4), itemgetter(8)
#: Mean bind parameters per statement from which an ``IN (...)`` shape is a batch loader
#: (an eager load over many parents, a chunked job), not one query per item.
_BATCH_PARAMS = 20
_PLACEHOLDER = re.compile(r"\?|%s|%\(\w*\)s|(?<!:):[^\W\d]\w*|\$\d")


@dataclass(slots=True)
class Detection:
    """One query problem found in one request (or capture)."""

    kind: str
    fingerprint: str
    sql: str
    count: int
    total_ms: float
    share_of_request: float
    call_site: str | None
    relationship: str | None
    suggestion: str
    confidence: float
    distinct_params: int | None = None
    orm: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # Every field is a str or a number: a shallow dict is the same as
        # ``dataclasses.asdict``, without its deep copy (≈ 1 200 bytecodes a detection).
        return {name: getattr(self, name) for name in _DETECTION_FIELDS}

    def describe(self) -> str:
        """A few lines for logs and test failures: what, where, the SQL and the fix."""
        what = {"n_plus_one": "N+1 query", "repeated_query": "repeated identical query",
                "single_load_loop": "objects loaded one by one, then a relationship each",
                "write_loop": "single-row writes in a loop",
                "unused_eager_load": "eager load nothing used"}.get(self.kind, self.kind)
        rel = f" loading {self.relationship}" if self.relationship else ""
        where = self.call_site or "unknown call site"
        return (f"{what}{rel}: {self.count} statements, {self.total_ms:.1f} ms "
                f"({self.share_of_request:.0%} of query time), confidence "
                f"{self.confidence:.2f}\n    at {where}\n    sql: {self.sql}\n"
                f"    fix: {self.suggestion}")


_DETECTION_FIELDS = tuple(f.name for f in fields(Detection))


class _Group:
    """The statements of one shape from one place (see :meth:`NPlusOneDetector.run`).

    ``add`` counts a bucket's statements and time at once (every group is a shape of the
    request's totals); what only the repeat-count rules read -- distinct parameter sets,
    bind parameters, ``executemany`` statements -- is counted by :meth:`settle`, when
    :meth:`NPlusOneDetector._classify` asks: a lone statement, or lazy loads the
    structural rule flagged, never need it (the N+1 page's 50 loads are one such group)."""

    __slots__ = ("buckets", "count", "first", "fp", "identities", "loads", "many", "ms", "orm",
                 "params", "relationship", "site", "structural", "unknown")

    def __init__(self, fp: SQLFingerprint, ev: QueryEvent, index: int) -> None:
        self.fp = fp
        self.count = 0
        self.ms = 0.0
        self.many = 0
        self.params = 0
        self.identities: set[object] = set()
        self.unknown = 0
        self.relationship = ev.relationship
        self.site = ev.call_site
        self.loads: str | None = ev.load
        self.orm = ev.orm
        self.first = index
        #: Its statements are lazy loads the structural rule decides about.
        self.structural = False
        #: ``(sql, events)`` of each bucket added, until :meth:`settle` counts them.
        self.buckets: list[tuple[str, list[QueryEvent]]] = []

    def add(self, sql: str, evs: list[QueryEvent], ms: float) -> None:
        """Count one bucket: statements of the same text (and call site, relationship)
        taking ``ms`` milliseconds together."""
        self.count += len(evs)
        self.ms += ms
        self.buckets.append((sql, evs))

    def settle(self) -> None:
        """Count the parameters of the buckets added since the last call, the sums in C."""
        for sql, evs in self.buckets:
            self.many += sum(map(_MANY, evs))
            self.params += sum(filter(None, map(_PCOUNT, evs)))
            hashes = set(map(_PHASH, evs))
            if None in hashes:
                hashes.discard(None)
                self._unhashed(sql, evs)
            self.identities.update(zip(repeat(sql), hashes))
        self.buckets.clear()

    def _unhashed(self, sql: str, evs: list[QueryEvent]) -> None:
        for ev in evs:
            if ev.params_hash is not None:
                continue
            pc = ev.params_count
            if pc == 0 or (pc is None and (
                    "?" not in self.fp.text or _PLACEHOLDER.search(sql) is None)):
                # No bind parameters: the raw text, literals included, is the identity.
                self.identities.add(sql)
            else:
                self.unknown += 1


class Analysis:
    """Everything one pass over a request's events yields: the detections and the
    per-shape totals the feature extractor reads."""

    __slots__ = ("by_shape", "detections", "query_count", "total_ms", "write_count")

    def __init__(self, detections: list[Detection], by_shape: dict[int, list[float]],
                 query_count: int, total_ms: float, write_count: int) -> None:
        self.detections = detections
        #: fingerprint hash -> [statements, milliseconds, distinct-identity count]
        self.by_shape = by_shape
        self.query_count = query_count
        self.total_ms = total_ms
        self.write_count = write_count


class NPlusOneDetector:
    """``analyze(events) -> list[Detection]``; see the module docstring for the rules.

    Pure and cheap: one cached fingerprint look-up and one dict update per statement,
    then a pass over the groups."""

    def __init__(self, min_repeats: int = 5, *, repeated_min: int = 5, write_min: int = 5,
                 min_duration_ms: float = 0.0, cache: FingerprintCache | None = None,
                 single_lazy_loads: bool = False) -> None:
        self.min_repeats = max(2, int(min_repeats))
        #: nplusone's rule instead of django-zeal's: one lazy relationship load of an
        #: instance fetched by a list form (``.all()``, iteration) is an N+1, even with
        #: one row (off by default: it flags every "show the first item's relation"
        #: page; see docs/queries.md). The hooks then record each result's form.
        self.single_lazy_loads = bool(single_lazy_loads)
        if self.single_lazy_loads:
            forms.want()
        self.repeated_min = max(2, int(repeated_min))
        self.write_min = max(2, int(write_min))
        self.min_duration_ms = float(min_duration_ms)
        self.cache = cache if cache is not None else default_cache
        #: Detections less confident than this are not reported. 0 by default (every
        #: rule match counts); the model registry tunes it from labelled feedback.
        self.min_confidence = 0.0

    def analyze(self, events: Sequence[QueryEvent]) -> list[Detection]:
        return self.run(events).detections

    def run(self, events: Sequence[QueryEvent]) -> Analysis:
        # Per statement, one dict operation: a loop repeats the same text from the same
        # place for the same relationship, so an N+1 of 50 statements is one bucket, and
        # everything else is done once per bucket, its sums in C (``map``/``sum``/``set``).
        # (benchmarks/real_pages.py --bytecodes: 130 bytecodes a statement before, ≈ 15.)
        buckets: dict[tuple[Any, ...], list[QueryEvent]] = {}
        for key, ev in zip(map(_BUCKET, events), events, strict=True):
            b = buckets.get(key)
            if b is None:
                buckets[key] = [ev]
            else:
                b.append(ev)
        get = self.cache.get
        groups: dict[tuple[int, str | None], _Group] = {}
        lazy: dict[tuple[str | None, str | None, str | None], LazyGroup] = {}
        # Transaction control (None here) is skipped; the same text may redact differently
        # per dialect, hence the database in the key.
        fps: dict[tuple[str, str | None], SQLFingerprint | None] = {}
        for first, ((sql, db, rel, site, load, _orm), evs) in enumerate(buckets.items()):
            fp = fps.get((sql, db), _MISSING)
            if fp is _MISSING:
                fp = get(sql, db)
                if fp.verb in _SKIP_VERBS:
                    fp = None
                fps[(sql, db)] = fp
            if fp is None:
                continue
            ev = evs[0]
            ms = sum(map(_MS, evs))  # once: a lazy load's bucket is counted by two groups
            structural = load is not None and is_structural(ev)
            if structural:
                lkey = (rel, load, site)
                lg = lazy.get(lkey)
                if lg is None:
                    lg = lazy[lkey] = LazyGroup(fp, ev, first)
                lg.add(evs, ms)
                # Still a shape of its own for the totals; the structural rule decides.
                gkey: tuple[int, str | None] = (fp.hash, f"{rel} {site}")
            else:
                gkey = (fp.hash, rel or site)
            g = groups.get(gkey)
            if g is None:
                g = groups[gkey] = _Group(fp, ev, first)
                g.structural = structural
            g.add(sql, evs, ms)
        by_shape: dict[int, list[float]] = {}
        total_ms = 0.0
        writes = 0
        n = 0
        for g in groups.values():
            n += g.count
            total_ms += g.ms
            if g.fp.verb in _WRITE_VERBS:
                writes += g.count
            shape = by_shape.get(g.fp.hash)
            if shape is None:
                by_shape[g.fp.hash] = [g.count, g.ms]
            else:
                shape[0] += g.count
                shape[1] += g.ms
        detections: list[Detection] = []
        flagged: set[tuple[str | None, str | None, str | None]] = set()
        for lkey, lg in lazy.items():
            d = self._structural(lg, total_ms, n)
            if d is not None:
                flagged.add(lkey)
                if d.confidence >= self.min_confidence:
                    detections.append(d)
        for g in groups.values():
            if g.count < 2:
                continue
            # Lazy loads the structural rule flagged are its own; one it did not flag (the
            # same get or count repeated) may still be a repeated query or a long loop.
            if g.structural and (g.relationship, g.loads, g.site) in flagged:
                continue
            d = self._classify(g, total_ms, n)
            if d is not None and d.confidence >= self.min_confidence:
                detections.append(d)
        detections.sort(key=lambda d: (-d.total_ms, -d.count))
        return Analysis(detections, by_shape, n, total_ms, writes)

    # --- classification ----------------------------------------------------------------

    def _classify(self, g: _Group, total_ms: float, n: int) -> Detection | None:
        fp = g.fp
        if g.ms < self.min_duration_ms:
            return None
        g.settle()
        share = g.ms / total_ms if total_ms > 0 else g.count / n
        if fp.verb in _WRITE_VERBS:
            single = g.count - g.many
            if fp.multi_row or " select " in fp.text or single < self.write_min:
                return None
            if g.params >= _BATCH_PARAMS * g.count or " case when " in fp.text:
                return None  # batched bulk writes (bulk_update's CASE, chunked IN deletes)
            return self._detection("write_loop", g, single, share, 1.0, self.write_min)
        known = g.unknown == 0
        distinct = len(g.identities)
        if known and distinct == 1:
            if g.count < self.repeated_min:
                return None
            return self._detection("repeated_query", g, g.count, share, 1.0, self.repeated_min)
        if g.count < self.min_repeats or g.loads == "batch":
            return None
        if " in (?)" in fp.text and g.params >= _BATCH_PARAMS * g.count:
            return None  # batched IN loads (eager loading of many parents), not a loop
        variation = distinct / g.count if known else 0.5
        d = self._detection("n_plus_one", g, g.count, share, variation, self.min_repeats)
        if g.first > 0:
            d.confidence = min(1.0, round(d.confidence + 0.1, 3))
        d.distinct_params = distinct if known else None
        return d

    def _structural(self, lg: LazyGroup, total_ms: float, n: int) -> Detection | None:
        if lg.count < (1 if self.single_lazy_loads else 2) or lg.ms < self.min_duration_ms:
            return None
        kind = lg.kind(self.single_lazy_loads)
        if kind is None:
            return None
        share = lg.ms / total_ms if total_ms > 0 else lg.count / n
        # r saturates at four loads: two is already the whole proof of a loop.
        conf = 0.4 * min(1.0, lg.count / 4.0) + 0.2 + 0.2 + 0.2 * min(1.0, share)
        if lg.first > 0:
            conf += 0.1
        rel = lg.relationship or ""
        fix = (single_load_fix(rel, lg.load, lg.orm) if kind == "single_load_loop"
               else suggest(kind, lg.fp, lg.relationship, lg.load, lg.orm, lg.path))
        return Detection(kind, lg.fp.id, lg.fp.text, lg.count, round(lg.ms, 3), round(share, 4),
                         lg.site, lg.relationship, fix, round(min(1.0, conf), 3), None, lg.orm)

    def _detection(self, kind: str, g: _Group, count: int, share: float, variation: float,
                   threshold: int) -> Detection:
        r = min(1.0, count / (2.0 * threshold))
        a = 1.0 if g.relationship else 0.8 if g.site else 0.5
        conf = 0.4 * r + 0.2 * variation + 0.2 * a + 0.2 * min(1.0, share)
        return Detection(kind, g.fp.id, g.fp.text, count, round(g.ms, 3), round(share, 4),
                         g.site, g.relationship, suggest(kind, g.fp, g.relationship, g.loads,
                                                         g.orm),
                         round(conf, 3), None, g.orm)
