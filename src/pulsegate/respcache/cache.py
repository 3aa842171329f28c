"""The learned response cache: the controller's admission step and what it learns.

Per request (only with ``response_cache`` on; built by the
:class:`~pulsegate.control.gatekeeper.Controller`, after the rate limiter, before the
allocator, so a hit is rate limited but takes no concurrency slot):

* a write -- any method but GET, HEAD, OPTIONS -- invalidates what
  ``response_cache_invalidate`` says (everything by default) when it is admitted *and*
  again when it finishes, and each invalidation bumps ``generation``: a response
  produced while a write was in flight is never stored (its capture began in an older
  generation);
* a GET of an allow-listed route that the safety rules admit (:mod:`.rules`) is looked
  up by its key. A fresh entry of a route still worth caching is a hit (but one in
  ``AUDIT_EVERY`` goes to the app, and its body is compared with the entry's): a 200
  ``Rejection`` with the stored headers, ``age`` and ``x-ml-optimization-applied:
  cache``. A stale entry within ``response_cache_stale_seconds`` is served too, except
  to the one request that refreshes it (stale-while-revalidate). Otherwise the request
  proceeds with a :class:`~pulsegate.respcache.capture.Capture`, and its response is
  learnt (:mod:`.learner`) and stored if the route is worth it.

Saved time per hit: the route's learnt ``latency_ms`` (what the app took to answer it)
less nothing -- the hit's own cost is in the request's measured latency.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.context import Rejection, RequestContext
from pulsegate.respcache.capture import Capture
from pulsegate.respcache.learner import RouteLearner
from pulsegate.respcache.rules import (
    MAX_URL,
    freshness,
    request_key,
    request_refusal,
    response_refusal,
    stored_headers,
)
from pulsegate.respcache.store import Entry, MemoryStore

if TYPE_CHECKING:
    from pulsegate.plugins import Host

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: One fresh hit of a route in this many is answered by the app instead and its body
#: compared with the stored one: the route keeps being learnt while it is served.
AUDIT_EVERY = 20
MAX_ROUTES = 1000
MAX_REASONS = 64
_LIVE: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


def invalidate(target: str = "*") -> int:
    """Drop the entries ``target`` names from every response cache in this process:
    ``"*"`` all, ``"/items*"`` the paths under a prefix, ``"/items/{id}"`` or
    ``"GET /items/{id}"`` an endpoint. Returns how many were dropped. Call it after a
    write the gate does not see (a job, another service's message)."""
    return sum(cache.invalidate(target) for cache in list(_LIVE))


class _Target:
    """A configured target: a route (with or without a method) or a path prefix."""

    __slots__ = ("method", "prefix", "route")

    def __init__(self, text: str) -> None:
        method, _, rest = text.partition(" ") if " " in text else ("", "", text)
        self.method = None if method in ("", "*") else method.upper()
        self.prefix = rest[:-1] if rest.endswith("*") else None
        self.route = None if rest.endswith("*") else rest

    def matches(self, method: str, path: str, route: str | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.prefix is not None:
            return path.startswith(self.prefix)
        return self.route == (route if route is not None else path)

    def matches_entry(self, entry: Entry) -> bool:
        method, _, route = entry.endpoint.partition(" ")
        return self.matches(method, entry.path.partition("?")[0], route)


class ResponseCache:
    def __init__(self, gate: Host) -> None:
        c = gate.config.respcache
        self.gate = gate
        self.clock = gate.clock
        self.allowed = tuple(_Target(t) for t in c.response_cache_routes)
        self.rules = {_Target(k): tuple(_Target(t) for t in v)
                      for k, v in c.response_cache_invalidate.items()}
        self.vary = c.response_cache_vary
        self.ttl = c.response_cache_ttl
        self.stale = c.response_cache_stale_seconds
        self.threshold = c.response_cache_prediction_threshold
        self.min_saving = c.response_cache_min_saving_ms
        self.max_body = c.response_cache_max_body
        self.store = MemoryStore(c.response_cache_max_entries, c.response_cache_max_bytes)
        #: key -> (digest of the last body the app produced for it, when): for learning
        self.digests: BoundedLRU[bytes, tuple[bytes, float, int]] = BoundedLRU(
            4 * c.response_cache_max_entries)
        self.learners: BoundedLRU[str, RouteLearner] = BoundedLRU(MAX_ROUTES)
        self.generation = 0
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        _LIVE.add(self)
        gate.plugs.add_stats("response_cache", self)
        gate.plugs.add_report("response_cache", self.report)

    # --- the request path ---------------------------------------------------------------

    def admit(self, ctx: RequestContext, route: str | None) -> Rejection | None:
        """A hit (a 200 to send instead of the app), a :class:`Capture` (proceed and
        learn the response) or None (not the cache's business)."""
        info = ctx.info
        method = info.method
        if method != "GET":
            if method not in SAFE_METHODS:
                self.written(method, info.path, route)
            return None
        path = info.path
        if not any(t.matches(method, path, route) for t in self.allowed):
            return None
        refusal = request_refusal(info.headers, self.vary)
        if refusal is not None or len(path) + len(info.query_string) > MAX_URL:
            self._refuse("request " + (refusal or "url length"))
            return None
        key = request_key(method, path, info.query_string, info.headers, self.vary)
        endpoint = f"{method} {route if route is not None else path}"
        learner = self._learner(endpoint)
        now = self.clock()
        seen = self.digests.get(key)
        learner.looked_up(seen is not None and now - seen[1] <= self.ttl + self.stale)
        entry = self.store.get(key)
        refresh = False
        if entry is not None:
            if not learner.worth(self.threshold, self.min_saving):
                self.store.drop(key, entry)  # the route stopped being worth it
            elif now < entry.fresh_until:
                if (learner.hits + learner.audits) % AUDIT_EVERY != AUDIT_EVERY - 1:
                    return self._hit(ctx, entry, learner, now, stale=False)
                learner.audits += 1  # answered by the app, its body compared (see learn)
                self.counts["audits"] += 1
            elif now < entry.stale_until:
                with self._lock:
                    busy = entry.refreshing is not None and now - entry.refreshing < self.stale
                    if not busy:
                        entry.refreshing = now
                if busy:
                    return self._hit(ctx, entry, learner, now, stale=True)
                refresh = True
            else:
                self.store.drop(key, entry)
        self.counts["misses"] += 1
        return Capture(self, ctx, key, endpoint, f"{path}?{info.query_string}"
                       if info.query_string else path, self.generation, refresh)

    def _hit(self, ctx: RequestContext, entry: Entry, learner: RouteLearner, now: float,
             stale: bool) -> Rejection:
        ctx.optimization = "cache"
        learner.hits += 1
        learner.saved_ms += learner.latency_ms
        self.counts["stale_hits" if stale else "hits"] += 1
        if stale:
            learner.stale_hits += 1
        headers = [*entry.headers, ("age", str(int(max(0.0, now - entry.stored_at))))]
        return Rejection(200, "cache", headers, entry.body,
                         entry.content_type or "application/octet-stream")

    def learn(self, capture: Capture, status: int, headers: list[tuple[str, str]],
              body: bytes | None) -> None:
        """The app answered a captured request: learn, and store when worth it."""
        now = self.clock()
        learner = self._learner(capture.endpoint)
        key = capture.key
        reason = response_refusal(status, headers, None if body is None else len(body),
                                  self.max_body, self.vary)
        if reason is not None or body is None:
            self._refuse("response " + (reason or "size"))
            with self._lock:
                self.digests.pop(key, None)
            self.store.drop(key)
            return
        learner.produced((now - capture.ctx.start) * 1000.0)
        digest = hashlib.blake2b(body, digest_size=16).digest()
        seen = self.digests.get(key)
        if seen is not None and seen[2] == capture.generation:
            same, age = seen[0] == digest, now - seen[1]
            # A body that changed only after its time to live breaks no promise of the
            # cache's; one that stayed the same for longer supports it all the more. (A
            # change across an invalidation -- a write -- is expected: not compared.)
            if age <= self.ttl or (same and age <= self.ttl + self.stale):
                learner.compare(same)
        with self._lock:  # (BoundedLRU's writers hold their own lock)
            self.digests.put(key, (digest, now, capture.generation))
        if capture.generation != self.generation:
            self.counts["discarded"] += 1  # a write was in flight: never stored
            self.store.drop(key)
            return
        if not learner.worth(self.threshold, self.min_saving):
            self.store.drop(key)
            return
        fresh = freshness(headers, self.ttl)
        content_type, kept = stored_headers(headers, capture.ctx.extra_headers)
        entry = Entry(capture.endpoint, capture.path, content_type, kept, body, digest, now,
                      now + fresh, now + fresh + self.stale)
        with self._lock:
            if capture.generation != self.generation:  # (a write began meanwhile)
                self.counts["discarded"] += 1
                return
            self.store.put(key, entry)
        learner.stored += 1
        self.counts["stored"] += 1

    def written(self, method: str, path: str, route: str | None) -> None:
        """A write request was admitted or finished: invalidate what it may change."""
        if not self.rules:
            self._invalidate(lambda e: True, "writes")
            return
        for rule, targets in self.rules.items():
            if rule.matches(method, path, route):
                for target in targets:
                    if target.route == "$path":  # the entries of the written path itself
                        self._invalidate(lambda e: e.path.partition("?")[0] == path, "writes")
                    else:
                        self._invalidate(target.matches_entry, "writes")

    def finished(self, ctx: RequestContext) -> None:
        """The controller's finish: a write invalidates again once it is done."""
        method = ctx.info.method
        if method not in SAFE_METHODS:
            self.written(method, ctx.info.path, ctx.route)

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, target: str = "*") -> int:
        """Drop the entries ``target`` names (see :func:`invalidate`)."""
        if target.strip() in ("*", ""):
            return self._invalidate(lambda e: True, "explicit")
        return self._invalidate(_Target(target.strip()).matches_entry, "explicit")

    def _invalidate(self, match: Any, why: str) -> int:
        with self._lock:
            self.generation += 1
            dropped = self.store.drop_where(match)
        self.counts["invalidations " + why] += 1
        self.counts["invalidated"] += dropped
        return dropped

    def _refuse(self, reason: str) -> None:
        """Count a refusal by its reason; a header's name is the client's to choose, so
        past ``MAX_REASONS`` distinct reasons the new ones are counted together."""
        if reason not in self.refused and len(self.refused) >= MAX_REASONS:
            reason = "(other reasons)"
        self.refused[reason] += 1

    def _learner(self, endpoint: str) -> RouteLearner:
        learner = self.learners.get(endpoint)
        if learner is None:
            with self._lock:
                learner = self.learners.get(endpoint)
                if learner is None:
                    learner = RouteLearner()
                    self.learners.put(endpoint, learner)
        return learner

    # --- reading --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts, hit rate = (hits + stale hits) / look-ups, saved milliseconds."""
        hits = self.counts["hits"] + self.counts["stale_hits"]
        lookups = hits + self.counts["misses"]
        return {"hits": self.counts["hits"], "stale_hits": self.counts["stale_hits"],
                "misses": self.counts["misses"],
                "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
                "saved_ms": round(sum(r.saved_ms for r in self.learners.values()), 1),
                "stored": self.counts["stored"], "discarded": self.counts["discarded"],
                "audits": self.counts["audits"],
                "invalidated": self.counts["invalidated"],
                "invalidations": {k.split(" ", 1)[1]: v for k, v in self.counts.items()
                                  if k.startswith("invalidations ")},
                "refused": dict(self.refused), "entries": len(self.store.entries),
                "bytes": self.store.bytes, "evicted": self.store.evicted}

    def report(self) -> dict[str, Any]:
        """The dashboard's section: the totals and each route's learnt figures."""
        routes = sorted(((k, r.summary()) for k, r in list(self.learners.items())),
                        key=lambda kv: -kv[1]["saved_ms"])
        return {**self.stats(), "threshold": self.threshold,
                "routes": [{"endpoint": k, **v,
                            "serving": self.learners[k].worth(self.threshold, self.min_saving)
                            if k in self.learners else False}
                           for k, v in routes[:50]]}
