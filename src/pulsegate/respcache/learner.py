"""Per route: do identical requests get identical bodies, and is caching worth it?

A :class:`RouteLearner` sees each response the app produced for a cacheable request
(by its body's digest, never the body) and each look-up:

* **agreement** -- when a key was answered before within the time to live (or, for
  an equal body, within it plus the stale window: a body that changed only after its
  time to live breaks no promise of the cache's), the new digest is compared with
  the last: equal adds one to
  ``agree``, different adds one to ``disagree`` and *halves* ``agree`` (a route that
  starts varying loses its confidence in two or three observations). Both are decayed
  by ``DECAY`` per comparison, so they weigh the last ~50.

      confidence = agree / (agree + disagree + 1)

  (0 before any comparison; 0.9 needs at least 9 agreeing repeats and no recent
  disagreement);
* **hotness** -- ``repeat_share``: an exponentially weighted share (``ALPHA``) of the
  route's look-ups whose key had been answered within the window (what a cache could
  at best have served);
* **slowness** -- ``latency_ms``: an exponentially weighted mean of the app's time to
  produce the route's cacheable responses.

While a route is served, one fresh hit in ``AUDIT_EVERY`` (20) is answered by the app
instead and compared like any repeat: a route whose bodies started to change (a write
the cache was not told about) loses its confidence even though its keys are hits.

The route is served from the cache while

      confidence > prediction_threshold  and  repeat_share * latency_ms >= min_saving_ms

>>> r = RouteLearner()
>>> for _ in range(10): r.compare(True)
>>> round(r.confidence, 3)
0.901
>>> r.compare(False); round(r.confidence, 3)
0.691
"""

from __future__ import annotations

import threading
from typing import Any

from pulsegate.bounded import BoundedLRU

DECAY = 0.98
ALPHA = 0.05
LATENCY_ALPHA = 0.1


class RouteLearner:
    __slots__ = ("agree", "audits", "disagree", "hits", "latency_ms", "lookups", "repeat_share",
                 "saved_ms", "stale_hits", "stored")

    def __init__(self) -> None:
        self.agree = 0.0
        self.disagree = 0.0
        self.repeat_share = 0.0
        self.latency_ms = 0.0
        self.lookups = 0
        self.hits = 0
        self.audits = 0
        self.stale_hits = 0
        self.stored = 0
        self.saved_ms = 0.0

    @property
    def confidence(self) -> float:
        return self.agree / (self.agree + self.disagree + 1.0)

    def compare(self, same: bool) -> None:
        """A repeated key's new body digest against its last one."""
        if same:
            self.agree = self.agree * DECAY + 1.0
            self.disagree *= DECAY
        else:
            self.agree *= 0.5 * DECAY
            self.disagree = self.disagree * DECAY + 1.0

    def looked_up(self, repeated: bool) -> None:
        self.lookups += 1
        self.repeat_share += ALPHA * ((1.0 if repeated else 0.0) - self.repeat_share)

    def produced(self, latency_ms: float) -> None:
        """The app answered a cacheable request of the route in ``latency_ms``."""
        if self.latency_ms == 0.0:
            self.latency_ms = latency_ms
        else:
            self.latency_ms += LATENCY_ALPHA * (latency_ms - self.latency_ms)

    def worth(self, threshold: float, min_saving_ms: float) -> bool:
        return (self.confidence > threshold
                and self.repeat_share * self.latency_ms >= min_saving_ms)

    def summary(self) -> dict[str, Any]:
        return {"confidence": round(self.confidence, 3),
                "repeat_share": round(self.repeat_share, 3),
                "latency_ms": round(self.latency_ms, 3), "lookups": self.lookups,
                "hits": self.hits, "audits": self.audits, "stale_hits": self.stale_hits,
                "stored": self.stored,
                "saved_ms": round(self.saved_ms, 1)}


class RouteLearners:
    """The learners of named routes, and apart those of raw paths (no route: a router's
    miss, or an app without one), so that a client requesting many distinct unmatched
    paths cannot evict what the routes learnt. At most ``limit`` of each; raw paths are
    evicted least recently used first (named routes are as many as the app has)."""

    def __init__(self, limit: int) -> None:
        self.routes: BoundedLRU[str, RouteLearner] = BoundedLRU(limit)
        self.paths: BoundedLRU[str, RouteLearner] = BoundedLRU(limit)
        self._lock = threading.Lock()

    def get(self, endpoint: str, named: bool) -> RouteLearner:
        """The endpoint's learner, made (among the named routes' or the raw paths', by
        ``named``) if neither has it."""
        learner = self.routes.get(endpoint)
        if learner is None:
            learner = self.paths.get(endpoint)
            if learner is not None:
                try:  # a path in use stays: its learner is now the most recent
                    self.paths.move_to_end(endpoint)
                except KeyError:  # (evicted meanwhile by another thread)
                    pass
        if learner is None:
            kept = self.routes if named else self.paths
            with self._lock:
                learner = kept.get(endpoint)
                if learner is None:
                    learner = RouteLearner()
                    kept.put(endpoint, learner)
        return learner

    def all(self) -> dict[str, RouteLearner]:
        return dict([*list(self.paths.items()), *list(self.routes.items())])

