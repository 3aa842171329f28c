"""One gate's view of its caches: counters per (cache, key pattern), the per-request
tally, and the reports built from them (:mod:`pulsegate.caches.advice`).

The instrumentation (:mod:`pulsegate.caches.redis`, :mod:`pulsegate.caches.django`)
calls :meth:`CacheMonitor.read`, :meth:`~CacheMonitor.write`,
:meth:`~CacheMonitor.delete` and :meth:`~CacheMonitor.failed` after each operation;
each is a few dictionary look-ups and additions (no I/O, no lock on the common path).

Memory is bounded by configuration whatever the key space: at most ``max_patterns``
(cache, pattern) entries (least recently created dropped first, counted in
``evictions``), at most ``max_tracked_keys`` keys remembered for reuse intervals (by a
hash of the key, never the key), and the key-pattern folder's own bounded maps.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pulsegate.backlog import Backlog
from pulsegate.bounded import BoundedLRU
from pulsegate.caches.keys import MAX_KEY_CHARS, KeyPatterns
from pulsegate.caches.stats import HOT_SAMPLE, PatternStats
from pulsegate.caches.vocabulary import Vocabulary
from pulsegate.faults import FaultCounter
from pulsegate.io_tally import request_tally

__all__ = ["NO_EXPIRY", "UNKNOWN_TTL", "CacheMonitor", "inside_cache_call"]

#: True while a cache framework's operation runs (a Django cache call): the client
#: hooks below it (redis-py) do not count its commands a second time.
inside_cache_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pulsegate_inside_cache_call", default=False)

#: Reads queued by :meth:`CacheMonitor.read_later` at most; the caller drains past it.
MAX_PENDING = 4096
#: Characters of a queued key kept until the drain: one past what a pattern reads, so a
#: longer key folds as it would whole (cut, ``...``); bytes keep four per character.
QUEUED_KEY_CHARS = MAX_KEY_CHARS + 1

#: ``ttl`` of a write that never expires.
NO_EXPIRY: float | None = None
#: ``ttl`` of a write whose time to live the hook cannot tell.
UNKNOWN_TTL = -1.0


class CacheMonitor:
    """Counters per (cache, key pattern) for one gate; see the module doc."""

    def __init__(self, *, max_patterns: int = 500, max_tracked_keys: int = 10_000,
                 sample: int = 4, key_words: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic,
                 faults: FaultCounter | None = None) -> None:
        self.clock = clock
        #: where the hooks count their own faults (the gate's)
        self.faults = faults if faults is not None else FaultCounter()
        vocabulary = Vocabulary(key_words)
        # the program's words are read once per process (≈ 1 s for 1 350 modules, on
        # the first monitor, at start-up): patterns are right from the first cache call
        vocabulary.ready(5.0)
        self.keys = KeyPatterns(words=vocabulary)
        self.stats: BoundedLRU[tuple[str, str], PatternStats] = BoundedLRU(max_patterns)
        #: key hash -> [written at, ttl (None: none, -1: unknown)], the reuse sample
        self.tracked: BoundedLRU[int, list[Any]] = BoundedLRU(max_tracked_keys)
        #: one key in ``sample`` (by its hash) is tracked for reuse intervals and the
        #: kind of its misses: the counts of those are of the sample (scaled in reports)
        self.sample = max(1, int(sample))
        self.evictions = 0
        self._lock = threading.Lock()
        #: reads queued by :meth:`read_later`: (cache, key, hit, size, elapsed, at)
        self.pending: Backlog[tuple[str, Any, bool, int | None, float, float]] = Backlog(
            lambda item: self._read(*item),
            lambda exc: self.faults.record("caches.drain", exc), MAX_PENDING)
        #: queries worth caching (pulsegate.caches.queries), when attached
        self.cacheable: Any = None

    # --- the hooks' verbs ----------------------------------------------------------------
    # Each runs once per key of every cache call: they are written flat (one look-up of
    # the key's pattern in the folder's memo, one of its counters), since this is the
    # whole of pulsegate's cost per call (benchmarks/io_overhead.py).

    def entry(self, cache: str, key: Any) -> PatternStats:
        """The counters of ``key``'s pattern in ``cache``, made on first use."""
        pattern = self.keys.memo.get(key) if key.__class__ is str else None
        if pattern is None:
            pattern = self.keys.pattern(key)
        stats = self.stats.get((cache, pattern))
        if stats is None:
            with self._lock:
                stats = self.stats.get((cache, pattern))
                if stats is None:
                    stats = PatternStats(cache, pattern)
                    if self.stats.put((cache, pattern), stats) is not None:
                        self.evictions += 1
        return stats

    def read(self, cache: str, key: Any, hit: bool, size: int | None = None,
             elapsed: float = 0.0) -> None:
        """A read of one key (``elapsed``: seconds the call took, shared by the keys of
        a multi-key read; ``size``: bytes of the value read, when known)."""
        if self.pending:
            self.drain()  # in order: a queued read of this key comes first
        self._read(cache, key, hit, size, elapsed, self.clock())
        tally = request_tally()
        if tally is not None:
            if hit:
                tally.cache_hits += 1
            else:
                tally.cache_misses += 1

    def read_later(self, cache: str, key: Any, hit: bool, size: int | None,
                   elapsed: float) -> None:
        """:meth:`read`, its counting queued for :meth:`drain` (the gate's scheduler
        thread, every 0.5 s, or the next reader of the counters): the calling thread
        pays an append and the request's tally. At :data:`MAX_PENDING` queued reads the
        caller drains the queue itself (no read is ever dropped). A key longer than a
        pattern reads is queued cut (a key built from a request body is the request's
        size, and the queue may wait for the drain); its reuse is tracked by that prefix."""
        if (key.__class__ is str and len(key) > QUEUED_KEY_CHARS) or (
                key.__class__ is bytes and len(key) > 4 * QUEUED_KEY_CHARS):
            key = key[:QUEUED_KEY_CHARS if key.__class__ is str else 4 * QUEUED_KEY_CHARS]
        self.pending.put((cache, key, hit, size, elapsed, self.clock()))
        tally = request_tally()  # the request's own count (its headers), in line
        if tally is not None:
            if hit:
                tally.cache_hits += 1
            else:
                tally.cache_misses += 1

    def drain(self) -> int:
        """Count the queued reads, oldest first (a fault in the counting is counted,
        never raised); returns how many."""
        return self.pending.drain()

    def _read(self, cache: str, key: Any, hit: bool, size: int | None, elapsed: float,
              now: float) -> None:
        """:meth:`read`'s counting, at ``now`` (the clock when the read happened)."""
        stats = self.entry(cache, key)
        key_hash = hash(key)
        calls = stats.calls = stats.calls + 1
        stats.call_s += elapsed
        if not calls % HOT_SAMPLE:
            stats.read(key_hash)
        track = self.tracked.get(key_hash) if not key_hash % self.sample else None
        if hit:
            stats.hits += 1
            if size is not None:
                stats.sized += 1
                stats.bytes_read += size
                if size > stats.max_size:
                    stats.max_size = size
            if track is not None:
                stats.reuse.add(now - track[0])
        else:
            stats.misses += 1
            if track is None:
                if not key_hash % self.sample:
                    stats.cold_misses += 1
            else:
                gap = now - track[0]
                ttl = track[1]
                if ttl is not None and 0 <= ttl <= gap:
                    stats.expired_misses += 1
                    stats.expired_gaps.add(gap)
                else:
                    stats.lost_misses += 1
                self.tracked.pop(key_hash, None)

    def write(self, cache: str, key: Any, ttl: float | None = UNKNOWN_TTL,
              size: int | None = None, elapsed: float = 0.0) -> None:
        """A write of one key with time to live ``ttl`` seconds (:data:`NO_EXPIRY`,
        :data:`UNKNOWN_TTL`)."""
        if self.pending:
            self.drain()
        stats = self.entry(cache, key)
        stats.calls += 1
        stats.call_s += elapsed
        stats.sets += 1
        if size is not None:
            stats.sized += 1
            stats.bytes_written += size
            if size > stats.max_size:
                stats.max_size = size
        if ttl is None:
            stats.ttl_none += 1
        elif ttl >= 0:
            stats.ttls += 1
            stats.ttl_sum += ttl
            if ttl > stats.ttl_max:
                stats.ttl_max = ttl
        key_hash = hash(key)
        if not key_hash % self.sample:
            self.tracked.put(key_hash, [self.clock(), ttl])

    def delete(self, cache: str, key: Any, elapsed: float = 0.0) -> None:
        if self.pending:
            self.drain()
        stats = self.entry(cache, key)
        stats.calls += 1
        stats.call_s += elapsed
        stats.deletes += 1
        self.tracked.pop(hash(key), None)

    def failed(self, cache: str, key: Any, elapsed: float = 0.0) -> None:
        """A call that raised (the cache is down, a timeout): counted; the hook
        re-raises or answers as the client would."""
        if self.pending:
            self.drain()
        stats = self.entry(cache, key)
        stats.errors += 1
        stats.calls += 1
        stats.call_s += elapsed

    # --- reading ---------------------------------------------------------------------------

    def patterns(self) -> list[PatternStats]:
        """Every (cache, pattern) entry held (a copy of the list; the entries are live),
        after the queued reads are counted."""
        if self.pending:
            self.drain()
        with self._lock:
            return list(self.stats.values())

    def stats_summary(self) -> dict[str, Any]:
        """``gate.stats()["caches"]``: totals per cache (summed over its patterns)."""
        if self.pending:
            self.drain()
        out: dict[str, Any] = {"patterns": len(self.stats), "pattern_evictions": self.evictions,
                               "tracked_keys": len(self.tracked)}
        totals: dict[str, list[float]] = {}
        for p in self.patterns():
            t = totals.setdefault(p.cache, [0, 0, 0, 0, 0, 0, 0.0])
            for i, v in enumerate((p.hits, p.misses, p.sets, p.deletes, p.errors, p.calls,
                                   p.call_s)):
                t[i] += v
        for name, (hits, misses, sets, deletes, errors, calls, call_s) in totals.items():
            reads = hits + misses
            out[name] = {"hits": int(hits), "misses": int(misses), "sets": int(sets),
                         "deletes": int(deletes), "errors": int(errors),
                         "hit_rate": hits / reads if reads else None, "calls": int(calls),
                         "mean_ms": call_s * 1000.0 / calls if calls else None}
        return out
