r"""Reports over a :class:`~pulsegate.caches.monitor.CacheMonitor`'s patterns: hit rate,
hot patterns and keys, and TTL advice. Pure reads of the counters; run off the request
path (``gate.stats()``, the dashboard, the CLI's snapshot).

**Hot patterns** are ranked by reads; a pattern whose most read key takes a share
:math:`h` of its reads (:meth:`~pulsegate.caches.stats.PatternStats.hottest_share`)
with :math:`h \ge` :data:`HOT_KEY_SHARE` over at least :data:`MIN_READS` reads is said
to have a *hot key* (one key of the pattern is read far more than its siblings: a
candidate for a local in-process cache, or for splitting).

**TTL advice** per pattern, from the reuse intervals (time from a key's write to each
later read, :math:`R`) and the misses on expired keys (time from the write to that read,
:math:`E`), with :math:`T` the mean TTL written and :math:`n_E, n_H` the expired misses
and the hits on tracked keys:

* *expires before reuse* -- when :math:`n_E / (n_E + n_H) \ge 0.2` and
  :math:`n_E \ge 5`: the suggested TTL is the 90th percentile of :math:`R \cup E`, the
  TTL that would have turned nine reads in ten of the ones seen into hits;
* *outlives its reuse* -- when :math:`T \ge 10\,q_{0.99}(R)` (or no TTL at all) over at
  least :data:`MIN_READS` reuses and no expired miss: the suggested TTL is
  :math:`2\,q_{0.99}(R)`, twice the longest reuse seen in 99 reads in 100;
* otherwise none. Suggestions are rounded up to one significant figure (a TTL is a
  setting, not a measurement) and never below one second.
"""

from __future__ import annotations

import math
from typing import Any

from pulsegate.caches.monitor import CacheMonitor
from pulsegate.caches.stats import PatternStats

__all__ = ["HOT_KEY_SHARE", "MIN_READS", "pattern_rows", "ttl_advice"]

HOT_KEY_SHARE = 0.2
MIN_READS = 50
EXPIRED_SHARE = 0.2
MIN_EXPIRED = 5


def _round_ttl(seconds: float) -> float:
    """Rounded up to one significant figure, at least 1 s.

    >>> _round_ttl(0.3), _round_ttl(47.0), _round_ttl(8200.0)
    (1.0, 50.0, 9000.0)
    """
    if seconds <= 1.0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(seconds))
    return float(math.ceil(seconds / magnitude - 1e-9) * magnitude)


def ttl_advice(s: PatternStats) -> dict[str, Any] | None:
    """The TTL advice for one pattern (see the module doc), or None."""
    n_expired = s.expired_misses
    n_reused = s.reuse.n
    mean_ttl = s.mean_ttl()
    if n_expired >= MIN_EXPIRED and n_expired / (n_expired + n_reused) >= EXPIRED_SHARE:
        both = type(s.reuse)()
        both.merge(s.reuse)
        both.merge(s.expired_gaps)
        return {"problem": "expires before reuse", "ttl_s": mean_ttl,
                "suggested_ttl_s": _round_ttl(both.quantile(0.9)),
                "expired_misses": n_expired, "reuses": n_reused}
    if n_reused >= MIN_READS and not n_expired:
        longest = s.reuse.quantile(0.99)
        ttl = mean_ttl if s.ttls and not s.ttl_none else None
        if ttl is None and s.ttl_none and longest > 0:
            return {"problem": "never expires", "ttl_s": None,
                    "suggested_ttl_s": _round_ttl(2 * longest), "reuses": n_reused}
        if ttl is not None and longest > 0 and ttl >= 10 * longest:
            return {"problem": "outlives its reuse", "ttl_s": ttl,
                    "suggested_ttl_s": _round_ttl(2 * longest), "reuses": n_reused}
    return None


def pattern_rows(monitor: CacheMonitor, limit: int | None = None) -> list[dict[str, Any]]:
    """One row per (cache, pattern), most read first: counts, hit rate, sizes, the hot
    key share and the TTL advice."""
    rows: list[dict[str, Any]] = []
    scale = monitor.sample  # the kinds of misses are counted on one key in ``sample``
    for s in monitor.patterns():
        reads = s.reads
        hot = s.hottest_share()
        rows.append({
            "cache": s.cache, "pattern": s.pattern, "reads": reads, "hits": s.hits,
            "misses": s.misses, "hit_rate": s.hit_rate, "sets": s.sets, "deletes": s.deletes,
            "errors": s.errors, "cold_misses": s.cold_misses * scale,
            "expired_misses": s.expired_misses * scale, "evicted_misses": s.lost_misses * scale,
            "mean_ms": s.call_s * 1000.0 / s.calls if s.calls else None,
            "mean_bytes": (s.bytes_read + s.bytes_written) / s.sized if s.sized else None,
            "max_bytes": s.max_size if s.sized else None,
            "mean_ttl_s": s.mean_ttl(),
            "reuse_p50_s": s.reuse.quantile(0.5) if s.reuse.n else None,
            "hot_key_share": round(hot, 3),
            "hot_key": reads >= MIN_READS and hot >= HOT_KEY_SHARE,
            "ttl_advice": ttl_advice(s),
        })
    rows.sort(key=lambda r: (-r["reads"], -r["sets"], r["cache"], r["pattern"]))
    return rows[:limit] if limit is not None else rows
