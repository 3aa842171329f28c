r"""What is counted for one (cache, key pattern): plain counters, a histogram of reuse
intervals and a small top-k of its keys -- a fixed number of slots whatever the traffic.

**Reuse intervals.** For the keys a monitor tracks (a bounded sample, see
:class:`~pulsegate.caches.monitor.CacheMonitor`) it knows when each was last written.
A read of a tracked key adds the time since that write to :attr:`PatternStats.reuse`;
a miss on a key written ``ttl`` seconds or more before is an *expired* miss (its gap
goes to :attr:`PatternStats.expired_gaps`); a miss on a key written with time to live
left, and not deleted since, is a *lost* miss: the cache evicted it (or another process
deleted it). Misses on keys never seen written are *cold*.

**Intervals as a log histogram.** Bucket :math:`i` holds intervals in
:math:`[2^{(i-1)/2}, 2^{i/2})` ms (bucket 0: under 1 ms), 64 buckets up to about 34
days; a quantile is read as its bucket's upper edge (at most 41 % high).

>>> h = LogHistogram()
>>> for ms in (10, 12, 15, 900, 1000, 1100):
...     h.add(ms / 1000.0)
>>> round(h.quantile(0.5), 3), round(h.quantile(0.99), 2)
(0.016, 1.45)

**Hot keys.** A space-saving top-:data:`TOP_K` of key hashes (Metwally et al., 2005)
over one read in :data:`HOT_SAMPLE` (every fourth read of the pattern, whatever its
key: an unbiased sample of its reads, a quarter of the cost):
:meth:`PatternStats.hottest_share` is the share of the sampled reads that surely went
to its most read key (its count less the count it inherited: a lower bound, so a
pattern whose reads are spread evenly never shows a hot key). Only the share is
reported, never the key or its hash.
"""

from __future__ import annotations

import math

__all__ = ["HOT_SAMPLE", "TOP_K", "LogHistogram", "PatternStats"]

BUCKETS = 64
TOP_K = 4
HOT_SAMPLE = 4
_frexp = math.frexp
_HALF = math.sqrt(0.5)


class LogHistogram:
    """Counts of intervals (seconds) in half-octave buckets from 1 ms."""

    __slots__ = ("counts", "n")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.n = 0

    def add(self, seconds: float) -> None:
        # ms = m·2^e with 0.5 <= m < 1: the half octave is 2e-1, or 2e when m >= √½
        m, e = _frexp(seconds * 1000.0)
        i = 2 * e - (m < _HALF) if e > 0 else 0
        self.counts[i if i < BUCKETS else BUCKETS - 1] += 1
        self.n += 1

    def quantile(self, q: float) -> float:
        """The ``q`` quantile in seconds (its bucket's upper edge); 0 when empty."""
        if not self.n:
            return 0.0
        rank = q * self.n
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return float(2.0 ** (i / 2.0)) / 1000.0
        return float(2.0 ** ((BUCKETS - 1) / 2.0)) / 1000.0

    def merge(self, other: LogHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.n += other.n


class PatternStats:
    """Counters of one (cache, pattern). Updated without a lock: these are statistics,
    and a lost increment under thread contention is tolerated (as the fingerprint
    cache's hit counter is)."""

    __slots__ = ("bytes_read", "bytes_written", "cache", "call_s", "calls", "cold_misses",
                 "deletes", "errors", "expired_gaps", "expired_misses", "hits", "lost_misses",
                 "max_size", "misses", "pattern", "reuse", "sampled", "sets", "sized", "top",
                 "ttl_max",
                 "ttl_none", "ttl_sum", "ttls")

    def __init__(self, cache: str, pattern: str) -> None:
        self.cache = cache
        self.pattern = pattern
        self.hits = 0
        self.misses = 0
        self.cold_misses = 0
        self.expired_misses = 0
        self.lost_misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.calls = 0
        self.call_s = 0.0
        #: values whose size is known (read and written), their bytes, the largest
        self.sized = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.max_size = 0
        #: writes with a time to live, their sum and largest (s); writes without one
        self.ttls = 0
        self.ttl_sum = 0.0
        self.ttl_max = 0.0
        self.ttl_none = 0
        self.reuse = LogHistogram()
        self.expired_gaps = LogHistogram()
        #: key hash -> [estimated reads, over-estimate bound] (space-saving, at most
        #: TOP_K entries)
        self.top: dict[int, list[int]] = {}
        #: reads that went through the top-k (one in HOT_SAMPLE)
        self.sampled = 0

    def read(self, key_hash: int) -> None:
        """One sampled read of a key (hit or miss) for the hot-key estimate."""
        self.sampled += 1
        top = self.top
        entry = top.get(key_hash)
        if entry is not None:
            entry[0] += 1
        elif len(top) < TOP_K:
            top[key_hash] = [1, 0]
        else:  # replace the least counted; it inherits that count as its error bound
            low = min(top, key=lambda h: top[h][0])
            floor = top.pop(low)[0]
            top[key_hash] = [floor + 1, floor]

    @property
    def reads(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        reads = self.hits + self.misses
        return self.hits / reads if reads else None

    def hottest_share(self) -> float:
        """Share of the sampled reads that surely went to the most read key: its count
        less its error bound, a lower bound (0 without reads)."""
        best = max((count - err for count, err in self.top.values()), default=0)
        return best / self.sampled if self.sampled else 0.0

    def mean_ttl(self) -> float | None:
        return self.ttl_sum / self.ttls if self.ttls else None
