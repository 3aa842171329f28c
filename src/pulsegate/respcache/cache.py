"""The learned response cache: the controller's admission step and what it learns.

Per request (only with ``response_cache`` on; built by the
:class:`~pulsegate.control.gatekeeper.Controller`, after the rate limiter, before the
allocator, so a hit is rate limited but takes no concurrency slot):

* a write -- any method but GET, HEAD, OPTIONS -- invalidates what
  ``response_cache_invalidate`` says (everything by default) when it is admitted *and*
  again when it finishes, and each invalidation bumps ``generation``: a response
  produced while a write was in flight is never stored (its capture began in an older
  generation). With the shared store the finishing one is I/O: under asyncio it is
  awaited before the write's last body chunk goes out (a
  :class:`~pulsegate.respcache.capture.Finishing`), never a blocking call on the event
  loop; Django tries it once the view returned (blocking under WSGI, awaited under
  ASGI), before the response goes back to the server; in other threads (plain WSGI)
  it blocks, at the controller's finish, as before;
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

import asyncio
import hashlib
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.context import Rejection, RequestContext
from pulsegate.flow import Flow, Maybe, run_async, settle, settle_async
from pulsegate.respcache.capture import Capture, Finishing
from pulsegate.respcache.learner import RouteLearner, RouteLearners
from pulsegate.respcache.rules import (
    MAX_URL,
    freshness,
    request_key,
    request_refusal,
    response_refusal,
    stored_headers,
)
from pulsegate.respcache.store import Entry, Found, MemoryStore
from pulsegate.respcache.targets import EVERYTHING, Target

if TYPE_CHECKING:
    from pulsegate.plugins import Host

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READS = frozenset({"GET", "HEAD"})
#: One fresh hit of a route in this many is answered by the app instead and its body
#: compared with the stored one: the route keeps being learnt while it is served.
AUDIT_EVERY = 20
MAX_ROUTES = 1000
MAX_REASONS = 64
MAX_REASON_CHARS = 80
#: Writes in flight whose finishing invalidation a :class:`Finishing` may await, at most
#: (past them: at the controller's finish only, as in threads).
MAX_WRITING = 4096
_LIVE: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


def _after(done: Maybe[int], answer: Rejection | None) -> Maybe[Rejection | None]:
    """``answer``, once ``done`` (a count, or a flow giving one) is."""
    if isinstance(done, GeneratorType):
        return _drained(done, answer)
    return answer


def _drained(done: Flow[int], answer: Rejection | None) -> Flow[Rejection | None]:
    yield from done
    return answer


def invalidate(target: str = "*") -> int:
    """Drop the entries ``target`` names from every response cache in this process:
    ``"*"`` all, ``"/items*"`` the paths under a prefix, ``"/items/{id}"`` or
    ``"GET /items/{id}"`` an endpoint. Returns how many were dropped. Call it after a
    write the gate does not see (a job, another service's message)."""
    return sum(cache.invalidate(target) for cache in list(_LIVE))


class ResponseCache:
    def __init__(self, gate: Host, store: Any = None) -> None:
        c = gate.config.respcache
        self.gate = gate
        self.clock = gate.clock
        self.allowed = tuple(Target(t) for t in c.response_cache_routes)
        self.rules = {Target(k): tuple(Target(t) for t in v)
                      for k, v in c.response_cache_invalidate.items()}
        self.vary = c.response_cache_vary
        #: Header names a request may carry besides those the rules know (keyed or not).
        self.passed = frozenset((*self.vary, *c.response_cache_ignore))
        self.ttl = c.response_cache_ttl
        self.stale = c.response_cache_stale_seconds
        self.threshold = c.response_cache_prediction_threshold
        self.min_saving = c.response_cache_min_saving_ms
        self.max_body = c.response_cache_max_body
        if store is None and c.response_cache_storage != "memory://":
            from pulsegate.respcache.redis_store import RedisStore

            store = RedisStore(c.response_cache_storage, c.response_cache_key_prefix,
                               c.response_cache_max_entries,
                               lambda exc: gate.faults.record("respcache.redis", exc))
        self.store = store if store is not None else MemoryStore(
            c.response_cache_max_entries, c.response_cache_max_bytes)
        #: key -> (digest of the last body the app produced for it, when): for learning
        self.digests: BoundedLRU[bytes, tuple[bytes, float, int]] = BoundedLRU(
            4 * c.response_cache_max_entries)
        self.learners = RouteLearners(MAX_ROUTES)
        #: writes admitted with a Finishing, until the controller's finish
        self.writing: dict[RequestContext, Finishing] = {}
        #: finishing invalidations awaited in a task (no last body chunk under asyncio)
        self._tasks: set[asyncio.Task[int]] = set()
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        _LIVE.add(self)
        gate.plugs.add_stats("response_cache", self)
        gate.plugs.add_report("response_cache", self.report)
        gate.plugs.add_state("response_cache", self)

    # --- the request path ---------------------------------------------------------------

    def admit(self, ctx: RequestContext, route: str | None) -> Maybe[Rejection | None]:
        """A hit (a 200 to send instead of the app), a :class:`Capture` (proceed and
        learn the response) or None (not the cache's business) -- at once, or as a
        :mod:`~pulsegate.flow` when the store is remote (its look-up is I/O)."""
        info = ctx.info
        method = info.method
        if method not in READS:
            if method not in SAFE_METHODS:
                finishing = None
                if self.store.shared and len(self.writing) < MAX_WRITING:
                    finishing = self.writing[ctx] = Finishing(self, ctx)
                return _after(self.written(method, info.path, route), finishing)
            return None
        path = info.path
        if not any(t.matches("GET", path, route) for t in self.allowed):
            return None
        refusal = request_refusal(info.headers, self.passed)
        if refusal is not None or len(path) + len(info.query_string) > MAX_URL:
            self._refuse("request " + (refusal or "url length"))
            return None
        # A HEAD is answered from the GET's entry (its headers, no body), never learnt.
        key = request_key("GET", path, info.query_string, info.headers, self.vary)
        endpoint = f"GET {route if route is not None else path}"
        learner = self.learners.get(endpoint, named=route is not None)
        now = self.clock()
        if method == "GET":
            seen = self.digests.get(key)
            learner.looked_up(seen is not None and now - seen[1] <= self.ttl + self.stale)
        found = self.store.lookup(key, now, self.stale, method == "GET")
        if isinstance(found, GeneratorType):
            return self._answer_later(found, ctx, key, endpoint, learner, now)
        return self._answer(found, ctx, key, endpoint, learner, now)

    def _answer_later(self, found: Flow[Found], ctx: RequestContext, key: bytes, endpoint: str,
                      learner: RouteLearner, now: float) -> Flow[Rejection | None]:
        return self._answer((yield from found), ctx, key, endpoint, learner, now)

    def _answer(self, found: Found, ctx: RequestContext, key: bytes, endpoint: str,
                learner: RouteLearner, now: float) -> Rejection | None:
        entry = found.entry
        head = ctx.info.method == "HEAD"
        if entry is not None:
            # A shared entry was stored by a process that had learnt the route: trusted
            # unless this process saw the route disagree with itself lately.
            shared = self.store.shared
            if not (learner.worth(self.threshold, self.min_saving)
                    or (shared and learner.disagree < 0.5)):
                if not self.store.shared:  # (another process may still serve it)
                    self.store.drop(key, entry)  # the route stopped being worth it
            elif now < entry.fresh_until:
                if shared and self.digests.get(key) is None:  # audits compare with it
                    with self._lock:
                        self.digests.put(key, (entry.digest, entry.stored_at, found.generation))
                if head or (learner.hits + learner.audits) % AUDIT_EVERY != AUDIT_EVERY - 1:
                    return self._hit(ctx, entry, learner, now, stale=False)
                learner.audits += 1  # answered by the app, its body compared (see learn)
                self.counts["audits"] += 1
            elif now < entry.stale_until:
                if head or not found.refresh:
                    return self._hit(ctx, entry, learner, now, stale=True)
            elif not self.store.shared:
                self.store.drop(key, entry)
        self.counts["misses"] += 1
        if head:
            return None  # (a HEAD response has no body to learn)
        info = ctx.info
        return Capture(self, ctx, key, endpoint, f"{info.path}?{info.query_string}"
                       if info.query_string else info.path, found.generation, found.refresh)

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
        learner = self.learners.get(capture.endpoint, named=False)
        key = capture.key
        reason = response_refusal(status, headers, None if body is None else len(body),
                                  self.max_body, self.vary)
        if reason is not None or body is None:
            self._refuse("response " + (reason or "size"))
            with self._lock:
                self.digests.pop(key, None)
            self.store.drop(key)  # (not cacheable now: no copy answers for it)
            return
        learner.produced((now - capture.ctx.start) * 1000.0)
        digest = hashlib.blake2b(body, digest_size=16).digest()
        seen = self.digests.get(key)
        if seen is not None and self._comparable(seen[2], capture.generation, capture):
            same, age = seen[0] == digest, now - seen[1]
            # A body that changed only after its time to live breaks no promise of the
            # cache's; one that stayed the same for longer supports it all the more. (A
            # change across an invalidation -- a write -- is expected: not compared.)
            if age <= self.ttl or (same and age <= self.ttl + self.stale):
                learner.compare(same)
        with self._lock:  # (BoundedLRU's writers hold their own lock)
            self.digests.put(key, (digest, now, capture.generation))
        if not learner.worth(self.threshold, self.min_saving):
            if not self.store.shared:  # (another process may still serve it)
                self.store.drop(key)
            return
        fresh = freshness(headers, self.ttl)
        content_type, kept = stored_headers(headers, capture.ctx.extra_headers)
        entry = Entry(capture.endpoint, capture.path, content_type, kept, body, digest, now,
                      now + fresh, now + fresh + self.stale)
        # Stored only if no invalidation came since the capture began (a write was in
        # flight: never stored); a shared store answers later, and counts it itself.
        stored = self.store.put(key, entry, capture.generation)
        if stored is not None:
            self.counts["stored" if stored else "discarded"] += 1
        if stored is not False:
            learner.stored += 1

    def _comparable(self, before: int, now: int, capture: Capture) -> bool:
        """Whether a body of generation ``before`` and one of ``now`` answer the same
        question: no invalidation between them named the capture's entry (a write may
        have changed it). Only the memory store remembers what its invalidations named;
        the shared one's generation also moves with other workers' writes. (-1: the
        shared store could not say.)"""
        if before == now:
            return now >= 0
        recent = getattr(self.store, "recent", None)
        if recent is None or before < 0 or now < before:
            return False
        between = [targets for generation, targets in list(recent) if before < generation <= now]
        return len(between) == now - before and not any(
            t.matches_entry(capture.endpoint, capture.path) for ts in between for t in ts)

    def written(self, method: str, path: str, route: str | None) -> Maybe[int]:
        """A write request was admitted or finished: invalidate what it may change."""
        if not self.rules:
            return self._invalidate(EVERYTHING, "writes")
        targets = [Target.path(path) if target.route == "$path" else target
                   for rule, named in self.rules.items() if rule.matches(method, path, route)
                   for target in named]
        return self._invalidate(targets, "writes") if targets else 0

    def finished(self, ctx: RequestContext) -> None:
        """The controller's finish: a write invalidates again once it is done (unless
        its :class:`Finishing` did, before its last body chunk). On an event loop
        (asyncio, no last chunk sent) the store's I/O is awaited in a task, never a
        blocking call on the loop."""
        method = ctx.info.method
        if method in SAFE_METHODS:
            return
        finishing = self.writing.pop(ctx, None)
        if finishing is not None and finishing.tried:
            return
        done = self.written(method, ctx.info.path, ctx.route)
        if not isinstance(done, GeneratorType):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (threads: blocking, as the write's own thread may)
            settle(done)
            return
        task = loop.create_task(run_async(done))
        self._tasks.add(task)  # (a task only weakly referenced by the loop)
        task.add_done_callback(self._tasks.discard)

    async def finish_write(self, ctx: RequestContext) -> None:
        """A write's finishing invalidation, awaited (a :class:`Finishing` under
        asyncio). A failed one is kept and replayed by the store (fail open)."""
        try:
            await settle_async(self.written(ctx.info.method, ctx.info.path, ctx.route))
        except Exception as exc:
            self.gate.faults.record("respcache.finish", exc)

    def finish_write_now(self, ctx: RequestContext) -> None:
        """A write's finishing invalidation, blocking (a :class:`Finishing` in a thread:
        Django under WSGI). A failed one is kept and replayed by the store (fail open)."""
        try:
            settle(self.written(ctx.info.method, ctx.info.path, ctx.route))
        except Exception as exc:
            self.gate.faults.record("respcache.finish", exc)

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, target: str = "*") -> int:
        """Drop the entries ``target`` names (see :func:`invalidate`)."""
        text = target.strip() or "*"
        return settle(self._invalidate((Target(text),), "explicit"))

    def _invalidate(self, targets: Sequence[Target], why: str) -> Maybe[int]:
        """Bump the generation and drop what ``targets`` name (a flow when the store is
        remote); counted by cause once done."""
        dropped = self.store.invalidate(targets)
        if isinstance(dropped, GeneratorType):
            return self._counted_later(dropped, why)
        return self._counted(dropped, why)

    def _counted_later(self, dropped: Flow[int], why: str) -> Flow[int]:
        return self._counted((yield from dropped), why)

    def _counted(self, dropped: int, why: str) -> int:
        self.counts["invalidations " + why] += 1
        self.counts["invalidated"] += dropped
        return dropped

    def _refuse(self, reason: str) -> None:
        """Count a refusal by its reason; a header's name is the client's to choose, so
        past ``MAX_REASONS`` distinct reasons the new ones are counted together, and a
        reason is cut at ``MAX_REASON_CHARS`` characters."""
        if len(reason) > MAX_REASON_CHARS:  # (a header's name is as long as it likes)
            reason = reason[:MAX_REASON_CHARS] + "..."
        if reason not in self.refused and len(self.refused) >= MAX_REASONS:
            reason = "(other reasons)"
        self.refused[reason] += 1

    # --- reading --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts, hit rate = (hits + stale hits) / look-ups, saved milliseconds."""
        hits = self.counts["hits"] + self.counts["stale_hits"]
        lookups = hits + self.counts["misses"]
        return {"hits": self.counts["hits"], "stale_hits": self.counts["stale_hits"],
                "misses": self.counts["misses"],
                "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
                "saved_ms": round(sum(r.saved_ms for r in self.learners.all().values()), 1),
                "stored": self.counts["stored"], "discarded": self.counts["discarded"],
                "audits": self.counts["audits"],
                "invalidated": self.counts["invalidated"],
                "invalidations": {k.split(" ", 1)[1]: v for k, v in self.counts.items()
                                  if k.startswith("invalidations ")},
                "refused": dict(self.refused), **self.store.stats()}

    def state(self) -> dict[str, Any]:
        """What ``pulsegate report`` shows after the process is gone (its last snapshot)."""
        return {"report": self.report()}

    def load_state(self, data: Any) -> None:
        """Nothing is restored: a process learns its routes afresh (a deploy may have
        changed what they answer), and its counts start at zero."""

    def report(self) -> dict[str, Any]:
        """The dashboard's section: the totals and each route's learnt figures."""
        learners = self.learners.all()
        routes = sorted(((k, r.summary()) for k, r in learners.items()),
                        key=lambda kv: -kv[1]["saved_ms"])
        return {**self.stats(), "threshold": self.threshold,
                "routes": [{"endpoint": k, **v,
                            "serving": learners[k].worth(self.threshold, self.min_saving)}
                           for k, v in routes[:50]]}
