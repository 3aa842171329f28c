"""Adaptive per-client rate limiter: a token bucket whose rate follows a trust score.

Policy: ``rate_limit`` (``"100/minute"``) with a ``burst`` (default: the quota), per-route
overrides, and a per-request ``cost``. The bucket is kept in GCRA form by a
:mod:`~pulsegate.control.storage` (memory or Redis)::

    T   = window / quota                 seconds per token at the nominal rate
    tau = burst * T                      the bucket depth, in seconds
    T_c = T / m_c                        client c's interval, m_c its multiplier

so a multiplier scales both the refill rate and the burst (``tau / T_c = burst * m_c``
tokens) while the stored debt (seconds) keeps its meaning when ``m_c`` changes.

``m_c`` comes from the behaviour profile (:mod:`~pulsegate.control.behaviour`): the
suspicious multiplier (seed 0.5) when the suspicion score is >= ``suspicion_threshold``,
the trusted multiplier (seed 2.0) after a long clean history, 1 otherwise; changed only
when the profile's confidence is above ``prediction_threshold``, so an unknown or
newly returning client keeps whatever it had (a fresh client has 1).

A client whose rate alarm fired (its rate rose abruptly above its own habit, see
:meth:`~pulsegate.control.behaviour_change.ChangeDetector.shift`) is also treated as
suspicious until its rate over window / 6 is back under the nominal rate: held at 1x,
a trusted reader that ramped to 1.9 req/s was refused less often than by a static
bucket at the nominal rate (34.4 % vs 35.0 %, ``ratelimit_sim.py --mixes``, quiet ramp).

A trusted client's bucket depth is learnt from its own bursts (runs of requests
closer than ``T``) instead of the fixed ``burst * m_c``::

    depth_c = clip(1.5 * peak_c, burst * m_c, 5 * burst)   tokens,  tau_c = depth_c * T_c

``peak_c`` its largest recent burst (fading 10 % a burst): a page-loader whose loads
reach 200 requests may take them at once. Never below ``burst * m_c``: a floor of
``burst`` (a reader who never bursts keeping the nominal depth) refused 1.85 % of the
bursty users' requests in ``ratelimit_sim.py`` seed 7 instead of 0.38 % (their peak
fades between big loads). Untrusted clients keep ``burst * m_c``.

Auth-failure backoff (fail2ban's ``maxretry`` = 5 is the default allowance): after
``auth_failures_allowed`` consecutive 401/403 answers without a success, each further
request of the client waits ``b * 2^(f - allowed)`` after its ``f``-th failure, with
``b = min(window, 60 s)``, at most 64 ``b``. A key that only ever fails gets a number
of tries logarithmic in time, however slowly it sends -- what a per-key rate cannot
see in a botnet whose every key stays under the rate.

``check_flow`` is the hot path: one dict look-up for the multiplier, one storage call,
a few float operations -- no locks, no allocation beyond the :class:`Decision` (and the
flow's generators).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pulsegate.control.behaviour import AUTH_FAILURES, BehaviourModel, digest
from pulsegate.control.headers import policy_name, ratelimit_headers
from pulsegate.control.storage import MemoryStorage, Storage
from pulsegate.flow import Flow

#: a trusted client's error average (EWMA, weight 0.1) stays under this: one error among
#: clean requests lifts it to 0.1 (a cut at 0.1 took trust from a reader for every 404),
#: two within about 7 requests to >= 0.15
TRUST_ERR = 0.15
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*([a-z]+?)s?\s*$")


def parse_rate(spec: str) -> tuple[float, float]:
    """``"100/minute"``, ``"10/second"``, ``"5 per 10 seconds"``, ``"1000/h"``
    -> (quota, window seconds). Raises ``ValueError`` with the accepted forms."""
    m = _RATE.match(spec.lower()) if isinstance(spec, str) else None
    unit = _UNITS.get(m.group(3)) if m else None
    if m is None or unit is None:
        raise ValueError("a rate like '100/minute', '10/second', '5 per 10 seconds' "
                         "(units: second, minute, hour, day)")
    quota = float(m.group(1))
    window = float(m.group(2) or 1.0) * unit
    if quota <= 0 or window <= 0:
        raise ValueError("a rate with a positive count and window, like '100/minute'")
    return quota, window


class Rule:
    """One rate policy: quota per window, burst, and its GCRA constants."""

    __slots__ = ("_policy_fields", "burst", "interval", "name", "policy", "quota", "scope",
                 "tolerance", "window")

    def __init__(self, spec: str, burst: float | None = None, name: str = "default",
                 scope: str = "") -> None:
        self.quota, self.window = parse_rate(spec)
        self.burst = float(burst) if burst is not None else self.quota
        self.interval = self.window / self.quota
        self.tolerance = self.burst * self.interval
        self.name = name
        self.policy = policy_name(name)
        self.scope = scope
        #: effective quota -> the RateLimit-Policy value (a handful of multipliers)
        self._policy_fields: dict[int, str] = {}

    def policy_field(self, quota: int) -> str:
        f = self._policy_fields.get(quota)
        if f is None:
            f = self._policy_fields[quota] = ratelimit_headers(
                self.policy, quota, self.window, 0, 0.0)[0][1]
        return f


class Decision:
    """The answer to one check. ``limit`` is the client's effective quota per window;
    ``reset_after`` seconds until its bucket is full; ``retry_after`` seconds until the
    refused request would pass (0 when allowed)."""

    __slots__ = ("allowed", "limit", "multiplier", "remaining", "reset_after", "retry_after",
                 "rule")

    def __init__(self, allowed: bool, limit: int, remaining: int, reset_after: float,
                 retry_after: float, rule: Rule, multiplier: float) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after
        self.rule = rule
        self.multiplier = multiplier

    def headers(self) -> list[tuple[str, str]]:
        """``RateLimit-Policy`` and ``RateLimit`` (+ ``Retry-After`` when refused)."""
        rule = self.rule
        if not self.allowed:
            return ratelimit_headers(rule.policy, self.limit, rule.window, self.remaining,
                                     self.reset_after, self.retry_after)
        # Hot path: the policy field is cached per effective quota.
        reset = self.reset_after
        t = int(reset) if reset == int(reset) else int(reset) + 1
        return [("ratelimit-policy", rule.policy_field(self.limit)),
                ("ratelimit", f"{rule.policy};r={self.remaining};t={t}")]

    def __repr__(self) -> str:
        return (f"Decision(allowed={self.allowed}, limit={self.limit}, remaining={self.remaining}"
                f", reset_after={self.reset_after:.3f}, retry_after={self.retry_after:.3f})")


class AdaptiveRateLimiter:
    def __init__(self, rate: str = "100/minute", burst: float | None = None, *,
                 routes: Mapping[str, str] | None = None, storage: Storage | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 trusted_multiplier: float = 2.0, suspicious_multiplier: float = 0.5,
                 suspicion_threshold: float = 0.5, prediction_threshold: float = 0.7,
                 trust_min_requests: int = 30, trust_min_seconds: float | None = None,
                 trust_shift_rate: float = 4.0, auth_failures_allowed: int = 5,
                 max_clients: int = 10_000,
                 adaptive: bool = True) -> None:
        self.clock = clock
        self.default = Rule(rate, burst)
        self.routes: dict[str, Rule] = {}
        for route, spec in (routes or {}).items():
            r_rate, _, r_burst = spec.partition(";")
            self.routes[route] = Rule(r_rate, float(r_burst) if r_burst else None,
                                      name=route, scope=route)
        self.storage: Storage = storage if storage is not None else MemoryStorage(
            clock, max_keys=max(4 * max_clients, 1000))
        self.trusted_multiplier = trusted_multiplier
        self.suspicious_multiplier = suspicious_multiplier
        self.suspicion_threshold = suspicion_threshold
        self.prediction_threshold = prediction_threshold
        self.trust_min_requests = trust_min_requests
        #: after an abrupt change, a clean stretch this long (default two windows) before
        #: the trusted multiplier again
        self.trust_min_seconds = (2.0 * self.default.window if trust_min_seconds is None
                                  else float(trust_min_seconds))
        #: consecutive 401/403 before the backoff (0: no backoff)
        self.auth_failures_allowed = auth_failures_allowed
        self.backoff_base = min(self.default.window, 60.0)
        self.max_clients = max_clients
        self.adaptive = adaptive
        #: a client whose rate alarm fired is suspicious while its rate stays above nominal
        self.ramp_suspicious = True
        self.behaviour = BehaviourModel(self.default.quota / self.default.window, max_clients,
                                        self.default.window, trust_shift_rate)
        #: client -> multiplier, only for clients whose multiplier is not 1.
        self.multipliers: dict[str, float] = {}
        #: trusted client -> its learnt bucket depth in tokens (default rule only), only
        #: where it differs from ``burst * trusted_multiplier``
        self.depths: dict[str, float] = {}
        #: client in auth-failure backoff -> limiter-clock time its next request may pass
        self.backoff: dict[str, float] = {}
        self.allowed = 0
        self.throttled = 0
        self._lock = threading.Lock()

    def rule_for(self, route: str | None) -> Rule:
        if route is None:
            return self.default
        return self.routes.get(route, self.default)

    def _decide(self, ok: bool, debt: float, rule: Rule, m: float, interval: float,
                cost: float, tol: float) -> Decision:
        if ok:
            self.allowed += 1
            return Decision(True, int(rule.quota * m), int((tol - debt) / interval + 1e-9),
                            debt, 0.0, rule, m)
        self.throttled += 1
        return Decision(False, int(rule.quota * m), max(0, int((tol - debt) / interval + 1e-9)),
                        debt, debt + cost * interval - tol, rule, m)

    def bucket(self, key: str, route: str | None = None) -> tuple[Rule, float, float, float]:
        """The rule for ``route``, ``key``'s multiplier, its interval ``T / m`` and its
        bucket depth in seconds (the learnt depth of a trusted client on the default
        rule, else the rule's ``tau``)."""
        rule = self.default if route is None else self.routes.get(route, self.default)
        m = self.multipliers.get(key, 1.0)
        interval = rule.interval / m
        depths = self.depths
        if depths and rule is self.default and key in depths:
            return rule, m, interval, depths[key] * interval
        return rule, m, interval, rule.tolerance

    def _backed_off(self, key: str, rule: Rule, m: float, interval: float,
                    tol: float) -> Decision | None:
        """The refusal while ``key`` is in auth-failure backoff, else None."""
        wait = self.backoff[key] - self.clock()
        if wait <= 0.0 or wait > 64.0 * self.backoff_base:  # over; or the clock jumped back
            del self.backoff[key]
            return None
        self.throttled += 1
        return Decision(False, int(rule.quota * m), 0, wait, wait, rule, m)

    def check_flow(self, key: str, cost: float = 1.0, route: str | None = None
                   ) -> Flow[Decision]:
        """Take ``cost`` tokens from ``key``'s bucket (the route's rule if it has one), as
        a :mod:`~pulsegate.flow`: the storage's I/O (a Redis round trip) is its only
        step, so one check serves threads (``run``) and asyncio (``run_async``)."""
        rule, m, interval, tol = self.bucket(key, route)
        if self.backoff and key in self.backoff:
            refused = self._backed_off(key, rule, m, interval, tol)
            if refused is not None:
                return refused
        ok, debt = yield from self.storage.take_flow(key, rule.scope, interval, tol, cost)
        return self._decide(ok, debt, rule, m, interval, cost, tol)

    def check(self, key: str, cost: float = 1.0, route: str | None = None) -> Decision:
        """:meth:`check_flow` with the storage's blocking ``take`` (in-process buckets:
        no generator at all, the hot path of ``control_overhead.py``)."""
        rule, m, interval, tol = self.bucket(key, route)
        if self.backoff and key in self.backoff:
            refused = self._backed_off(key, rule, m, interval, tol)
            if refused is not None:
                return refused
        ok, debt = self.storage.take(key, rule.scope, interval, tol, cost)
        return self._decide(ok, debt, rule, m, interval, cost, tol)

    def observe(self, key: str, record: Any, user_agent: str | None = None,
                query: str | None = None, now: float | None = None) -> float:
        """Feed a finished request (a :class:`~pulsegate.records.RequestRecord`) to the
        client's profile and update its multiplier; returns the multiplier. ``now`` is
        the request's time (default: the limiter's clock) -- any clock, as long as one
        limiter always gets the same kind."""
        return self.observe_digests(key, record, digest(user_agent), digest(query or ""), now)

    def observe_digests(self, key: str, record: Any, ua_digest: int, query_digest: int,
                        now: float | None = None) -> float:
        """As :meth:`observe`, with ``digest(user_agent)`` and ``digest(query or "")``
        (:func:`~pulsegate.control.behaviour.digest`) instead of the strings."""
        mults = self.multipliers
        if now is None:
            now = self.clock()
        with self._lock:  # the LRU's get/move/evict sequence is not atomic across threads
            p = self.behaviour.update_digests(key, now, record.method, record.route, record.path,
                                              record.status, ua_digest, query_digest,
                                              mults.get(key, 1.0))
        if not self.adaptive:
            return 1.0
        fails = p.auth_failures
        if record.status in AUTH_FAILURES and fails >= self.auth_failures_allowed > 0:
            # timed from this failure (a refused retry, a 429, does not re-arm it)
            delay = self.backoff_base * 2.0 ** min(fails - self.auth_failures_allowed, 6)
            self.backoff[key] = self.clock() + delay
            if len(self.backoff) > self.max_clients:
                self._shrink_backoff()
        elif not fails and self.backoff:
            self.backoff.pop(key, None)
        clean = now - p.since  # seconds since its last abrupt change
        if p.confidence < self.prediction_threshold:
            return mults.get(key, 1.0)  # not sure yet: keep what it had
        if p.suspicion >= self.suspicion_threshold or (self.ramp_suspicious and p.ramped):
            m = self.suspicious_multiplier
        elif (p.n >= self.trust_min_requests and clean >= self.trust_min_seconds
              and p.suspicion < 0.1 and p.err < TRUST_ERR):
            m = self.trusted_multiplier
        else:
            m = 1.0
        if m == 1.0:
            mults.pop(key, None)
        else:
            mults[key] = m
            if len(mults) > 2 * self.max_clients:
                self._shrink_multipliers()
        self._learn_depth(key, p.peak_burst, m)
        return m

    def _learn_depth(self, key: str, peak: float, m: float) -> None:
        """A trusted client's depth: ``clip(1.5 peak, burst m, 5 burst)`` tokens."""
        depths = self.depths
        if m == self.trusted_multiplier and m > 1.0:
            burst = self.default.burst
            depth = min(5.0 * burst, max(burst * m, 1.5 * peak))
            if depth != burst * m:
                depths[key] = depth
                if len(depths) > 2 * self.max_clients:
                    self.depths = dict(list(depths.items())[-self.max_clients:])
                return
        if depths:
            depths.pop(key, None)

    def _shrink_backoff(self) -> None:
        # Drop what is over; if still too many, the ones that end soonest.
        now = self.clock()
        live = sorted((until, k) for k, until in self.backoff.items() if until > now)
        self.backoff = {k: until for until, k in live[-self.max_clients:]}

    def _shrink_multipliers(self) -> None:
        # Keep punishments over rewards; then the newest half.
        mults = self.multipliers
        punished = {k: v for k, v in mults.items() if v < 1.0}
        if len(punished) > self.max_clients:
            punished = dict(list(punished.items())[-self.max_clients:])
        self.multipliers = punished

    def state(self) -> dict[str, Any]:
        """What survives a restart (the model registry persists it): population
        statistics, the multipliers, and a penalty record per suspicious client.
        Bounded by ``max_clients``; JSON-able."""
        with self._lock:
            b = self.behaviour
            penalties = dict(b.penalties)
            for key, p in list(b.profiles.items()):
                if p.suspicion >= 0.25:
                    penalties[key] = p.suspicion
            items = list(penalties.items())[-self.max_clients:]
            mults = list(self.multipliers.items())[-2 * self.max_clients:]
            return {"version": 1, "pop_mean": list(b.pop_mean), "pop_var": list(b.pop_var),
                    "pop_n": b.pop_n, "penalties": [[k, float(v)] for k, v in items],
                    "multipliers": [[k, float(v)] for k, v in mults]}

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state`; raises ``ValueError`` on a state of another shape."""
        if data.get("version") != 1:
            raise ValueError("unknown rate-limiter state version")
        b = self.behaviour
        mean, var = data["pop_mean"], data["pop_var"]
        if len(mean) != len(b.pop_mean) or len(var) != len(b.pop_var):
            raise ValueError("rate-limiter state: feature count mismatch")
        with self._lock:
            b.pop_mean = [float(x) for x in mean]
            b.pop_var = [float(x) for x in var]
            b.pop_n = int(data["pop_n"])
            for key, v in data["penalties"]:
                b.penalties.put(str(key), float(v))
            self.multipliers = {str(k): float(v) for k, v in data["multipliers"]}

    def suspicion(self, key: str) -> float:
        p = self.behaviour.profiles.get(key)
        return p.suspicion if p is not None else self.behaviour.penalties.get(key, 0.0)

    def stats(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "throttled": self.throttled,
                "clients": len(self.behaviour),
                "suspicious": sum(1 for v in self.multipliers.values() if v < 1.0),
                "trusted": sum(1 for v in self.multipliers.values() if v > 1.0)}
