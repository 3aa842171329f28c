"""One gate's view of its outbound HTTP calls: counters per (upstream, route template),
the health of each upstream, and what each endpoint spends waiting on each upstream.

The hooks (:mod:`pulsegate.outbound.httpx`, :mod:`pulsegate.outbound.requests`) call
:meth:`OutboundMonitor.call` once per finished call. Each call is also one run of the
unit ``UPSTREAM <upstream>`` (:mod:`pulsegate.units`), learnt by the same
``EndpointModel`` and incident detector as an endpoint, which is where an upstream's
incidents come from and what its health score reads (:mod:`pulsegate.outbound.health_score`).

Memory is bounded by configuration: at most ``max_upstreams`` upstreams, at most
``max_routes`` route templates per upstream (more fold into ``*``), at most
``4 * max_upstreams`` (endpoint, upstream) pairs.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.io_tally import request_tally
from pulsegate.outbound import health_score as hf
from pulsegate.outbound.health_score import SUCCESS_BETA

if TYPE_CHECKING:
    from pulsegate.plugins import Host

__all__ = ["OUTCOMES", "OutboundMonitor", "RouteStats"]

#: A call's outcome: a response below 500, a 5xx, an exception, a timeout.
OUTCOMES = ("success", "failure", "error", "timeout")
#: The unit kind of an outbound call (pulsegate.units.UPSTREAM): its model's key is
#: ``"UPSTREAM <upstream>"``.
UPSTREAM = "UPSTREAM"
#: Calls queued for the unit models between two drains (older ones are dropped).
MAX_PENDING = 10_000
#: Calls of one upstream its model learns per drain (a drain every 0.5 s).
LEARN_PER_DRAIN = 8
#: Smoothing of an endpoint's time per request in an upstream: fast and baseline.
FAST, SLOW = 0.2, 0.01


class RouteStats:
    """Counters of one (upstream, route)."""

    __slots__ = ("calls", "errors", "failures", "health", "max_ms", "route", "statuses",
                 "timeouts", "total_ms", "upstream")

    def __init__(self, upstream: str, route: str, health: list[float] | None = None) -> None:
        self.upstream = upstream
        self.route = route
        #: the upstream's health state, shared by its routes: [S, last call, calls, ms]
        self.health = health if health is not None else [1.0, 0.0, 0, 0.0]
        self.calls = 0
        self.failures = 0  # 5xx responses
        self.errors = 0    # exceptions other than timeouts
        self.timeouts = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        #: responses by status class: index 1..5 for 1xx..5xx (0: other)
        self.statuses = [0] * 6

    def row(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "route": self.route, "calls": self.calls,
                "failures": self.failures, "errors": self.errors, "timeouts": self.timeouts,
                "mean_ms": self.total_ms / self.calls if self.calls else None,
                "max_ms": self.max_ms,
                "statuses": {f"{i}xx": n for i, n in enumerate(self.statuses) if i and n}}


class OutboundMonitor:
    """See the module doc. ``gate`` gives the unit models (``gate.units``, when the
    gate has them) and the fault counter."""

    def __init__(self, gate: Host | None = None, *, max_upstreams: int = 200,
                 max_routes: int = 50, halflife: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gate = gate
        self.clock = clock
        self.halflife = halflife
        self.max_routes = max_routes
        self.routes: BoundedLRU[tuple[str, str], RouteStats] = BoundedLRU(
            max_upstreams * max_routes)
        self.route_names: BoundedLRU[str, set[str]] = BoundedLRU(max_upstreams)
        #: upstream -> [success S, last call (clock), calls, total ms]
        self.health_state: BoundedLRU[str, list[float]] = BoundedLRU(max_upstreams)
        #: (endpoint, upstream) -> [fast ms per request, baseline ms per request, requests]
        self.spend: BoundedLRU[tuple[str, str], list[float]] = BoundedLRU(4 * max_upstreams)
        #: the cause finder (pulsegate.outbound.causes), once attached to a gate
        self.causes: Any = None
        #: the gate's units (pulsegate.units), when it has them: each call is a run of
        #: the unit ``UPSTREAM <upstream>``, queued here and learnt by drain()
        self.units: Any = getattr(gate, "units", None)
        self.pending: deque[tuple[str, float, str]] = deque(maxlen=MAX_PENDING)
        self.rng = random.Random(0x10B0)
        self._lock = threading.Lock()

    # --- the hooks' verb -----------------------------------------------------------------

    def route_stats(self, upstream: str, route: str) -> RouteStats:
        """The counters of (upstream, route), made on first use; a route past the
        upstream's ``max_routes`` is counted under ``*``."""
        with self._lock:
            stats = self.routes.get((upstream, route))
            if stats is not None:
                return stats
            names = self.route_names.get(upstream)
            if names is None:
                names = set()
                self.route_names.put(upstream, names)
            if route not in names and len(names) >= self.max_routes:
                route = "*"
                stats = self.routes.get((upstream, route))
                if stats is not None:
                    return stats
            names.add(route)
            state = self.health_state.get(upstream)
            if state is None:
                state = [1.0, 0.0, 0, 0.0]
                self.health_state.put(upstream, state)
            stats = RouteStats(upstream, route, state)
            self.routes.put((upstream, route), stats)
            return stats

    def call(self, upstream: str, route: str, elapsed: float, status: int | None,
             outcome: str) -> None:
        """One finished call: ``status`` of the response (None when it raised),
        ``outcome`` one of :data:`OUTCOMES`. Runs on every outbound call: flat."""
        stats = self.routes.get((upstream, route))
        if stats is None:
            stats = self.route_stats(upstream, route)
        ms = elapsed * 1000.0
        stats.calls += 1
        stats.total_ms += ms
        if ms > stats.max_ms:
            stats.max_ms = ms
        if status is not None:
            stats.statuses[status // 100 if 100 <= status < 600 else 0] += 1
        ok = outcome == "success"
        if not ok:
            if outcome == "failure":
                stats.failures += 1
            elif outcome == "timeout":
                stats.timeouts += 1
            else:
                stats.errors += 1
        state = stats.health  # [S, last call, calls, total ms] of the upstream
        state[0] += SUCCESS_BETA * ((1.0 if ok else 0.0) - state[0])
        state[1] = self.clock()
        state[2] += 1
        state[3] += ms
        tally = request_tally()
        if tally is not None:
            tally.outbound(upstream, ms, not ok)
        if self.units is not None:  # learnt off the call's path: see drain()
            self.pending.append((upstream, ms, "success" if ok else (
                "timeout" if outcome == "timeout" else "failure")))

    def drain(self) -> None:
        """Hand the calls made since the last drain to the upstreams' unit models
        (``gate.units.record``): a scheduler job every half second, so the model update,
        its incident windows and the unit's record cost the calls nothing (the queue
        holds at most :data:`MAX_PENDING` calls; older ones are dropped).

        At most :data:`LEARN_PER_DRAIN` calls per upstream are learnt per drain (16 a
        second): below that rate every call, above it a uniform sample of them in their
        order, which keeps the latency distribution and the failure share unbiased and
        bounds the learning at 16 model updates a second per upstream."""
        units, pending = self.units, self.pending
        if units is None or not pending:
            return
        by_upstream: dict[str, list[tuple[float, str]]] = {}
        while pending:
            upstream, ms, outcome = pending.popleft()
            by_upstream.setdefault(upstream, []).append((ms, outcome))
        for upstream, calls in by_upstream.items():
            if len(calls) > LEARN_PER_DRAIN:
                keep = sorted(self.rng.sample(range(len(calls)), LEARN_PER_DRAIN))
                calls = [calls[i] for i in keep]
            for ms, outcome in calls:
                units.record(UPSTREAM, upstream, ms, outcome=outcome)

    # --- health ------------------------------------------------------------------------------

    def model_of(self, upstream: str) -> Any:
        """The upstream's unit model in the gate's baselines (None: not learnt yet)."""
        gate = self.gate
        if gate is None or getattr(gate, "units", None) is None:
            return None
        return gate.baselines.peek(f"{UPSTREAM} {upstream}")

    def health(self, upstream: str, now: float | None = None) -> float | None:
        """The upstream's health (:mod:`pulsegate.outbound.health_score`), recovered for the
        time since its last call; None if it was never called."""
        state = self.health_state.get(upstream)
        if state is None:
            return None
        level = baseline = 0.0
        model = self.model_of(upstream)
        if model is not None and model.n:
            level = model.view[2]
            detector = getattr(model, "incident", None)
            baseline = getattr(detector, "b", level) if getattr(detector, "windows", 0) \
                else level
        h = hf.health(state[0], level, baseline)
        idle = (self.clock() if now is None else now) - state[1]
        return hf.recovered(h, idle, self.halflife)

    def latency_ms(self, upstream: str) -> float | None:
        """The smoothed latency (the model's level; the mean without a model)."""
        model = self.model_of(upstream)
        if model is not None and model.n:
            return math.exp(model.view[2])
        state = self.health_state.get(upstream)
        return state[3] / state[2] if state and state[2] else None

    # --- per endpoint ------------------------------------------------------------------------

    def spent(self, endpoint: str, upstreams: dict[str, list[float]]) -> None:
        """A finished request of ``endpoint`` waited ``ms`` in each upstream."""
        for upstream, (_, ms) in upstreams.items():
            key = (endpoint, upstream)
            s = self.spend.get(key)
            if s is None:
                self.spend.put(key, [ms, ms, 1.0])
                continue
            s[2] += 1.0
            s[0] += FAST * (ms - s[0])
            # the baseline is the plain mean early on, then slow; while the fast level
            # sits clearly above it (a rise being judged) it learns ten times slower, so
            # a regression is still a rise when the endpoint's incident is flagged
            rate = max(SLOW, 1.0 / s[2])
            if s[0] > 1.5 * s[1] + 1.0:
                rate *= 0.1
            s[1] += rate * (ms - s[1])

    def rows(self) -> list[dict[str, Any]]:
        """One row per upstream with its health, then its routes (most called first)."""
        self.drain()
        now = self.clock()
        by_upstream: dict[str, list[dict[str, Any]]] = {}
        for stats in list(self.routes.values()):
            by_upstream.setdefault(stats.upstream, []).append(stats.row())
        out = []
        for upstream, routes in by_upstream.items():
            routes.sort(key=lambda r: -r["calls"])
            calls = sum(r["calls"] for r in routes)
            h = self.health(upstream, now)
            out.append({"upstream": upstream, "calls": calls,
                        "health": None if h is None else round(h, 3),
                        "latency_ms": self.latency_ms(upstream),
                        "failures": sum(r["failures"] for r in routes),
                        "errors": sum(r["errors"] for r in routes),
                        "timeouts": sum(r["timeouts"] for r in routes), "routes": routes})
        out.sort(key=lambda r: -r["calls"])
        return out
