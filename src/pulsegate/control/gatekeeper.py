"""The engine's control step: rate limit, then admission, per request.

Built by :class:`~pulsegate.engine.PulseGate` only when ``rate_limiting`` or
``resource_allocation`` is on, so with both off the engine pays one ``is None`` check.

``admission(ctx)``, one flow for threads and asyncio (:mod:`~pulsegate.flow`):

1. the client key (:class:`~pulsegate.control.clientkey.ClientKeyResolver`);
2. the route template, resolved up front only when a per-route rule needs it;
3. the rate limiter -> ``Rejection(429, "throttle")`` with ``RateLimit``,
   ``RateLimit-Policy`` and ``Retry-After``; an allowed request gets ``RateLimit`` /
   ``RateLimit-Policy`` in ``ctx.extra_headers`` (sent whatever ``headers`` says:
   they are protocol fields, not diagnostics);
4. the allocator -> a ticket (``ctx.optimization = "queued"`` if it waited) or
   ``Rejection(503, "shed")`` with ``Retry-After``.

While a healing action is on (:mod:`~pulsegate.control.healing`, after a critical
incident) the route is resolved up front and, before step 3, a request of a shed
priority class gets ``Rejection(503, "shed")``, one of a degraded endpoint
``ctx.optimization = "degrade"``, and one of a tightened endpoint costs ``1 / factor``.

``finish`` releases the ticket with the measured latency and queues the request for
the client's behaviour profile (folded in by a scheduler job, off the request path).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from pulsegate.context import Rejection, RequestContext
from pulsegate.control.allocator import PRIORITIES, ConcurrencyAllocator, Ticket
from pulsegate.control.behaviour import digest
from pulsegate.control.breaker import CircuitBreaker
from pulsegate.control.clientkey import ClientKeyResolver
from pulsegate.control.qpolicy import QPolicy
from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.control.storage import MemoryStorage, RedisStorage, Storage
from pulsegate.flow import Flow, Maybe, as_flow, settle
from pulsegate.plugins import Plugs, Setting
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.control.healing import Healer
    from pulsegate.plugins import Host
    from pulsegate.respcache import ResponseCache

NAMES = ("high", "normal", "low")
_THROTTLE_BODY = b"Too Many Requests\n"
_SHED_BODY = b"Service Unavailable: overloaded, retry later\n"


class Controller:
    def __init__(self, gate: Host) -> None:
        c = gate.config.control
        self.gate = gate
        self.keys = ClientKeyResolver(c.client_key, c.trusted_proxies, c.forwarded_header)
        self.limiter: AdaptiveRateLimiter | None = None
        self.storage: Storage | None = None
        self.remote = False
        if c.rate_limiting:
            breaker = CircuitBreaker(c.breaker_failures, c.breaker_recovery, clock=gate.clock)
            local = MemoryStorage(gate.clock, max_keys=max(4 * c.max_clients, 1000))
            if c.rate_limit_storage.startswith("memory://"):
                self.storage = local
            else:
                self.storage = RedisStorage(
                    c.rate_limit_storage, clock=gate.wall, breaker=breaker, fallback=local,
                    on_fallback=lambda exc: gate.faults.record("ratelimit.redis", exc))
                self.remote = True
            self.limiter = AdaptiveRateLimiter(
                c.rate_limit, c.rate_limit_burst, routes=c.rate_limit_routes,
                storage=self.storage, clock=gate.clock,
                trusted_multiplier=c.trusted_multiplier,
                suspicious_multiplier=c.suspicious_multiplier,
                suspicion_threshold=c.suspicion_threshold,
                prediction_threshold=c.prediction_threshold, max_clients=c.max_clients,
                trust_min_requests=c.trust_min_requests, trust_min_seconds=c.trust_min_seconds,
                trust_shift_rate=c.trust_shift_rate,
                auth_failures_allowed=c.auth_failures_allowed)
        self.costs = dict(c.rate_limit_costs)
        #: finished requests waiting to be folded into behaviour profiles (bounded: if the
        #: scheduler falls behind, the oldest are dropped rather than memory growing)
        #: Entries hold the User-Agent and query string as fixed-size digests, never the
        #: strings, so an entry does not grow with the request.
        self.pending: deque[tuple[str, RequestRecord, int, int]] = deque(maxlen=65536)
        if self.limiter is not None:
            gate.scheduler.every(0.5, self.flush, name="control.behaviour")
        self.forest: Any = None
        if self.limiter is not None and c.behaviour_forest:
            from pulsegate.control.forest import ForestScorer

            self.forest = ForestScorer(self.limiter.behaviour)
            gate.scheduler.every(60.0, self._train_forest, name="control.forest")
        self.allocator: ConcurrencyAllocator | None = None
        self._pressure = 0.0
        if c.resource_allocation:
            self.allocator = ConcurrencyAllocator(
                c.min_concurrency, c.max_concurrency, c.initial_concurrency,
                target_latency=c.target_latency_ms / 1000.0, max_queue=c.max_queue,
                max_queue_wait=c.max_queue_wait, interval=c.allocator_interval,
                clock=gate.clock, pressure=lambda: self._pressure,
                throughput_target=c.throughput_target, auto_target=c.auto_target_latency,
                policy=QPolicy(c.q_alpha, c.q_gamma, c.q_epsilon, c.q_epsilon_decay, seed=None))
            self._cpu_last: tuple[float, float] | None = None
            gate.scheduler.every(1.0, self.sample_pressure, name="control.pressure")
        # Rules keyed by route template need the route before the app runs; rules ending
        # in '*' are path prefixes (optionally "METHOD /prefix*") and need no routing.
        self.route_priority: dict[str, int] = {}
        self.prefix_priority: list[tuple[str | None, str, int]] = []
        for rule, prio in c.priority_rules.items():
            method, _, target = rule.partition(" ") if " " in rule else ("", "", rule)
            if target.endswith("*"):
                self.prefix_priority.append((method.upper() or None, target[:-1], PRIORITIES[prio]))
            else:
                self.route_priority[rule] = PRIORITIES[prio]
        self.priority_header = c.priority_header.lower() if c.priority_header else None
        self.need_route = bool(c.rate_limit_routes or self.costs or self.route_priority)
        #: The learned response cache (pulsegate.respcache), only when it is on.
        self.cache: ResponseCache | None = None
        if gate.config.respcache.response_cache:
            from pulsegate.respcache import ResponseCache

            self.cache = ResponseCache(gate)
        self.healer: Healer | None = None
        if c.healing_actions:
            from pulsegate.control.healing import Healer

            self.healer = Healer(gate, c.healing_actions, c.healing_seconds,
                                 c.healing_max_per_hour)
        self._plug_into(gate.plugs)

    def _plug_into(self, plugs: Plugs) -> None:
        """What the registry persists, tunes and scores of the control components."""
        plugs.add_stats("control", self)
        limiter = self.limiter
        if limiter is not None:
            plugs.add_state("rate-limit-behaviour", limiter)
            plugs.add_score("rate-limit-behaviour", limiter.suspicion)

            def set_threshold(value: float) -> None:
                limiter.suspicion_threshold = value

            plugs.add_tunable("rate-limit-behaviour", Setting(
                lambda: limiter.suspicion_threshold, set_threshold))
        allocator = self.allocator
        if allocator is not None:
            plugs.add_state("allocator", allocator)
            plugs.add_gauge("concurrency_limit", lambda: allocator.limit)
            plugs.add_gauge("in_flight", lambda: allocator.inflight)

    # --- per request -------------------------------------------------------------------

    def _route(self, ctx: RequestContext) -> str | None:
        if ctx.route is None and ctx.info.route_resolver is not None:
            ctx.set_route(ctx.info.route_resolver())
        return ctx.route

    def priority(self, ctx: RequestContext, route: str | None) -> int:
        info = ctx.info
        if self.priority_header is not None:
            value = info.headers.get(self.priority_header)
            if value is not None:
                p = PRIORITIES.get(value.strip().lower())
                if p is not None:
                    return p
        if route is not None and self.route_priority:
            p = self.route_priority.get(f"{info.method} {route}")
            if p is None:
                p = self.route_priority.get(route)
            if p is not None:
                return p
        for method, prefix, p in self.prefix_priority:
            if info.path.startswith(prefix) and (method is None or method == info.method):
                return p
        return 1

    def _limited(self, ctx: RequestContext, d: Any) -> Rejection | None:
        """The rate limiter's decision: a 429, or the RateLimit fields on the response
        (an allowed request carries them too: protocol, not diagnostics)."""
        if not d.allowed:
            ctx.optimization = "throttle"
            self.gate.counters["throttled"] += 1
            return Rejection(429, "throttle", d.headers(), _THROTTLE_BODY)
        if ctx.extra_headers is None:
            ctx.extra_headers = d.headers()
        else:
            ctx.extra_headers.extend(d.headers())
        return None

    def _admitted(self, ctx: RequestContext, ticket: Ticket | None) -> Rejection | None:
        if ticket is None:
            ctx.optimization = "shed"
            self.gate.counters["shed"] += 1
            retry = max(1, math.ceil(self.allocator.interval if self.allocator else 1.0))
            return Rejection(503, "shed", [("retry-after", str(retry))], _SHED_BODY)
        ctx.ticket = ticket
        if ticket.waited > 0.0 and ctx.optimization == "none":  # "degrade" says more
            ctx.optimization = "queued"
        return None

    def admission(self, ctx: RequestContext) -> Maybe[Rejection | None]:
        """The per-request admission, written once for threads and asyncio.

        Returns the response to send instead of the app's, or None to proceed -- at
        once when nothing needs I/O (in-process buckets, a free slot: the common
        case, no generator), else a :mod:`~pulsegate.flow` for the rest, whose
        steps are the I/O (a Redis round trip, a wait in the allocator's queue):
        ``settle(...)`` runs it blocking, ``await settle_async(...)`` on the loop."""
        ctx.client_key = key = self.keys(ctx.info)
        healer = self.healer
        healing = healer is not None and healer.engaged
        route = self._route(ctx) if self.need_route or healing else None
        if healing:
            assert healer is not None
            rejection = self._heal(ctx, route, healer)
            if rejection is not None:
                return rejection
        limiter = self.limiter
        if limiter is not None:
            cost = self.costs.get(route, 1.0) if route else 1.0
            if healing and route:
                assert healer is not None
                cost /= healer.tightened.get(f"{ctx.method} {route}", 1.0)
            if self.remote:
                return self._limit_remotely(ctx, key, cost, route)
            rejection = self._limited(ctx, limiter.check(key, cost, route))
            if rejection is not None:
                return rejection
        return self._allocate(ctx, route)

    def _heal(self, ctx: RequestContext, route: str | None, healer: Healer) -> Rejection | None:
        """What the healing actions on now do to this request: shed it (503) or mark it
        degraded."""
        if healer.shed_from < len(NAMES) and self.priority(ctx, route) >= healer.shed_from:
            ctx.optimization = "shed"
            self.gate.counters["shed"] += 1
            retry = str(min(60, math.ceil(healer.seconds)))
            return Rejection(503, "shed", [("retry-after", retry)], _SHED_BODY)
        if route is not None and f"{ctx.method} {route}" in healer.degraded:
            ctx.optimization = "degrade"
        return None

    def _limit_remotely(self, ctx: RequestContext, key: str, cost: float,
                        route: str | None) -> Flow[Rejection | None]:
        limiter = self.limiter
        assert limiter is not None
        rejection = self._limited(ctx, (yield from limiter.check_flow(key, cost, route)))
        if rejection is not None:
            return rejection
        return (yield from as_flow(self._allocate(ctx, route)))

    def _allocate(self, ctx: RequestContext, route: str | None, answer: Rejection | None = None,
                  looked_up: bool = False) -> Maybe[Rejection | None]:
        """The response cache (a hit needs no slot), then the allocator (``answer``: the
        cache's capture, kept when admitted; ``looked_up``: the cache has answered)."""
        cache = self.cache
        if cache is not None and not looked_up:
            found = cache.admit(ctx, self._route(ctx))
            if isinstance(found, GeneratorType):  # a shared store: its look-up is I/O
                return self._allocate_after(ctx, route, found)
            answer = found  # type: ignore[assignment]  # (not a flow: narrowed above)
            if answer is not None and not answer.proceed:
                return answer
        allocator = self.allocator
        if allocator is None:
            return answer
        p = self.priority(ctx, route)
        ctx.priority = NAMES[p]
        ticket = allocator.try_acquire(p)
        if ticket is None:
            return self._queue(ctx, p, answer)
        return self._admitted(ctx, ticket) or answer

    def _allocate_after(self, ctx: RequestContext, route: str | None,
                        found: Flow[Rejection | None]) -> Flow[Rejection | None]:
        answer = yield from found
        if answer is not None and not answer.proceed:
            return answer
        return (yield from as_flow(self._allocate(ctx, route, answer, looked_up=True)))

    def _queue(self, ctx: RequestContext, p: int,
               answer: Rejection | None = None) -> Flow[Rejection | None]:
        allocator = self.allocator
        assert allocator is not None
        return self._admitted(ctx, (yield from allocator.acquire_flow(p))) or answer

    def admit(self, ctx: RequestContext) -> Rejection | None:
        """:meth:`admission` run to its end by blocking (threads, tests, benchmarks)."""
        return settle(self.admission(ctx))

    def finish(self, ctx: RequestContext, record: RequestRecord) -> None:
        if self.cache is not None:
            self.cache.finished(ctx)
        ticket = ctx.ticket
        if ticket is not None:
            ctx.ticket = None
            ticket.release(record.duration_ms / 1000.0, record.status < 500 and ctx.error is None)
        if self.limiter is not None and ctx.client_key is not None:
            # The behaviour profile is updated off the request path (scheduler, every
            # 0.5 s): here only a bounded append. Times are the requests' own start
            # times, so batching does not distort inter-arrival statistics.
            info = ctx.info
            self.pending.append((ctx.client_key, record, digest(info.headers.get("user-agent")),
                                 digest(info.query_string or "")))

    def flush(self) -> int:
        """Fold pending finished requests into the behaviour profiles (scheduler job;
        tests call it directly). Returns how many were processed."""
        limiter = self.limiter
        if limiter is None:
            return 0
        pop = self.pending.popleft
        n = 0
        while True:
            try:
                key, record, ua, query = pop()
            except IndexError:
                return n
            limiter.observe_digests(key, record, ua, query, now=record.started_at)
            n += 1

    # --- background --------------------------------------------------------------------

    def _train_forest(self) -> None:
        limiter = self.limiter
        if self.forest is not None and limiter is not None:
            with limiter._lock:  # profiles must not move while they are read and scored
                self.forest.run()

    def sample_pressure(self) -> None:
        """Scheduler job (1 s): memory and CPU pressure in [0, 1+] for the allocator's
        state. Off the request path because it reads /proc."""
        c = self.gate.config.control
        pressure = 0.0
        if c.max_memory_mb is not None:
            try:
                with open("/proc/self/statm") as f:
                    rss_pages = int(f.read().split()[1])
                pressure = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20 / c.max_memory_mb
            except (OSError, ValueError, IndexError):
                pass
        now, cpu = time.monotonic(), time.process_time()
        if self._cpu_last is not None:
            wall = now - self._cpu_last[0]
            if wall > 0:
                util = (cpu - self._cpu_last[1]) / wall  # 1.0: one core's worth, what the GIL allows
                pressure = max(pressure, util / c.cpu_threshold)
        self._cpu_last = (now, cpu)
        self._pressure = pressure

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.limiter is not None:
            out["ratelimit"] = self.limiter.stats()
            if isinstance(self.storage, RedisStorage):
                out["ratelimit"]["redis_fallbacks"] = self.storage.fallbacks
                out["ratelimit"]["breaker"] = self.storage.breaker.state
        if self.allocator is not None:
            out["allocator"] = self.allocator.stats()
        return out
