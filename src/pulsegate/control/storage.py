"""Bucket storage behind one interface: in-process memory, or Redis shared by workers.

Buckets are kept in GCRA form (the "generic cell rate algorithm", exactly equivalent to
a token bucket): one float per key, the *theoretical arrival time* ``tat``. With an
emission interval ``T = 1/rate`` and a tolerance ``tau = burst * T``::

    tat'  = max(tat, now) + cost * T
    allow  iff  tat' - now <= tau          (then store tat')
    debt   = tat' - now                    seconds until the bucket is full again
    remaining = floor((tau - debt) / T)    tokens left
    retry_after = max(tat, now) + cost*T - tau - now     when refused

One number per client means a bucket whose ``tat`` is in the past is identical to no
bucket at all, so expired buckets can be dropped freely (memory) or expire by TTL
(Redis, ``PX = debt``) without changing any decision.

``take(client, scope, T, tau, cost) -> (allowed, debt)``; ``debt`` is the debt after
the call when allowed, the current debt when refused. ``take_flow`` is the same check
as a :mod:`~pulsegate.flow` (the form the admission flow uses): in-process
buckets answer without a step; Redis yields its round trip, so one piece of code --
breaker, fallback, decoding -- serves threads and asyncio alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pulsegate.control.breaker import CircuitBreaker
from pulsegate.flow import Flow, run

logger = logging.getLogger("pulsegate")


class Storage(Protocol):
    def take(self, client: str, scope: str, interval: float, tolerance: float,
             cost: float) -> tuple[bool, float]: ...

    def take_flow(self, client: str, scope: str, interval: float, tolerance: float,
                  cost: float) -> Flow[tuple[bool, float]]: ...


class MemoryStorage:
    """Buckets in a dict, bounded by ``max_keys``.

    Over the cap, expired buckets (``tat <= now``, indistinguishable from absent) are
    swept first; only if that is not enough are the buckets with the *least* debt
    dropped -- the cheapest loss, and never the punished clients first."""

    __slots__ = ("_lock", "clock", "evictions", "max_keys", "tat")

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.tat: dict[str, float] = {}
        self.evictions = 0
        # Read-decide-write must be atomic under WSGI threads (two threads could both
        # spend the last token otherwise); uncontended, the lock costs ~0.1 us.
        self._lock = threading.Lock()

    def take(self, client: str, scope: str, interval: float, tolerance: float,
             cost: float) -> tuple[bool, float]:
        key = client if not scope else client + "|" + scope
        tats = self.tat
        with self._lock:
            now = self.clock()
            tat = tats.get(key, now)
            if tat < now:
                tat = now
            new = tat + cost * interval
            debt = new - now
            if debt > tolerance + 1e-9:
                return False, tat - now
            tats[key] = new
            if len(tats) > self.max_keys:
                self._shrink(now)
            return True, debt

    def take_flow(self, client: str, scope: str, interval: float, tolerance: float,
                  cost: float) -> Flow[tuple[bool, float]]:
        """:meth:`take` as a flow: no I/O, so no step."""
        return self.take(client, scope, interval, tolerance, cost)
        yield  # makes this a generator (of no steps)

    def _shrink(self, now: float) -> None:
        tats = self.tat
        target = int(self.max_keys * 0.9)
        for k in [k for k, v in tats.items() if v <= now]:
            del tats[k]
        if len(tats) > target:
            for k, _ in sorted(tats.items(), key=lambda kv: kv[1])[: len(tats) - target]:
                del tats[k]
                self.evictions += 1

    def __len__(self) -> int:
        return len(self.tat)


# One round trip, atomic: read tat, decide, write tat' with a TTL equal to the debt.
# Numbers go back as strings: Redis would truncate Lua numbers to integers.
GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tol = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + cost * interval
local debt = new - now
if debt > tol + 1e-9 then
  return {0, string.format('%.6f', tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.max(1, math.ceil(debt * 1000)))
return {1, string.format('%.6f', debt)}
"""


class RedisStorage:
    """Buckets in Redis, shared by every worker and host; one ``EVALSHA`` per check.

    Keys are ``<prefix>{<client>}:<scope>``: the ``{client}`` hash tag puts all of one
    client's buckets in one Redis Cluster slot. ``clock`` must be a wall clock shared
    by the workers (epoch seconds), since the ``tat`` values are compared across them.

    A :class:`CircuitBreaker` wraps every call (in its ``guard``, so a cancelled or
    crashed call still resolves a half-open trial). While it is open (or a call fails,
    with a Redis error or anything else) the check is answered by a local
    :class:`MemoryStorage` -- fail-local: the request is still limited, per process, and
    never errors. ``fallbacks`` counts those checks.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "pulsegate:rl:",
                 clock: Callable[[], float] = time.time, breaker: CircuitBreaker | None = None,
                 fallback: MemoryStorage | None = None, client: Any = None,
                 socket_timeout: float = 0.25, on_fallback: Callable[[BaseException], None] | None = None
                 ) -> None:
        import redis  # the `redis` extra; imported here so the core needs no Redis

        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.socket_timeout = socket_timeout
        #: ``redis+cluster://host:port`` talks to a Redis Cluster (any node as seed).
        self.cluster = url.startswith("redis+cluster://")
        if client is None:
            if self.cluster:
                from redis.cluster import RedisCluster

                client = RedisCluster.from_url(
                    "redis://" + url[len("redis+cluster://"):], socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout)
            else:
                client = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                              socket_connect_timeout=socket_timeout)
        self.client = client
        self.script = self.client.register_script(GCRA_LUA)
        self.breaker = breaker or CircuitBreaker(5, 60.0, clock=time.monotonic)
        self.fallback = fallback or MemoryStorage(clock)
        self.on_fallback = on_fallback
        self.fallbacks = 0
        self.remote_calls = 0
        self._aclient: Any = None
        self._ascript: Any = None
        self._aloop: Any = None
        self._lock = threading.Lock()

    def key(self, client: str, scope: str) -> str:
        return f"{self.prefix}{{{client}}}:{scope or '-'}"

    def _fail(self, exc: BaseException) -> None:
        """Report a failed call (the breaker's guard has already counted it)."""
        if self.on_fallback is not None:
            self.on_fallback(exc)
        else:
            logger.warning("pulsegate: Redis rate-limit storage failed (%r); using local "
                           "buckets", exc)

    def _args(self, interval: float, tolerance: float, cost: float) -> list[str]:
        # repr() keeps every float digit across the wire to the Lua script.
        return [repr(self.clock()), repr(interval), repr(tolerance), repr(cost)]

    def _taken(self, res: Any) -> tuple[bool, float]:
        """A round trip's answer: count it, decode (allowed, wait); a malformed answer
        raises inside the breaker's guard, so it counts as a failure."""
        self.remote_calls += 1
        return bool(int(res[0])), float(res[1])

    def take(self, client: str, scope: str, interval: float, tolerance: float,
             cost: float) -> tuple[bool, float]:
        """Blocking form of :meth:`take_flow` (threads; tests)."""
        return run(self.take_flow(client, scope, interval, tolerance, cost))

    def take_flow(self, client: str, scope: str, interval: float, tolerance: float,
                  cost: float) -> Flow[tuple[bool, float]]:
        """One ``EVALSHA`` (the :class:`RoundTrip` step) inside the breaker's guard; the
        local buckets answer while the breaker is open or when the call fails."""
        if self.breaker.allow():
            try:
                with self.breaker.guard():  # CancelledError frees the trial and propagates
                    return self._taken((yield RoundTrip(
                        self, self.key(client, scope), self._args(interval, tolerance, cost))))
            except Exception as exc:  # Redis, a timeout, or a bug: fail local, never error
                self._fail(exc)
        self.fallbacks += 1
        return self.fallback.take(client, scope, interval, tolerance, cost)

    def async_script(self) -> Any:
        import asyncio

        import redis.asyncio as aredis

        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            if self.cluster:
                from redis.asyncio.cluster import RedisCluster

                self._aclient = RedisCluster.from_url(
                    "redis://" + self.url[len("redis+cluster://"):],
                    socket_timeout=self.socket_timeout,
                    socket_connect_timeout=self.socket_timeout)
            else:
                self._aclient = aredis.Redis.from_url(
                    self.url, socket_timeout=self.socket_timeout,
                    socket_connect_timeout=self.socket_timeout)
            self._ascript = self._aclient.register_script(GCRA_LUA)
            self._aloop = loop
        return self._ascript

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


class RoundTrip:
    """The step of :meth:`RedisStorage.take_flow`: run the GCRA script once, with the
    blocking client or (one per event loop) the asyncio one."""

    __slots__ = ("args", "key", "storage")

    def __init__(self, storage: RedisStorage, key: str, args: list[str]) -> None:
        self.storage = storage
        self.key = key
        self.args = args

    def call(self) -> Any:
        return self.storage.script(keys=[self.key], args=self.args)

    async def acall(self) -> Any:
        return await self.storage.async_script()(keys=[self.key], args=self.args)


def storage_from_url(url: str, *, clock: Callable[[], float], breaker: CircuitBreaker,
                     max_keys: int, on_fallback: Callable[[BaseException], None] | None = None
                     ) -> MemoryStorage | RedisStorage:
    """``memory://`` or ``redis://...`` / ``rediss://...`` / ``unix://...`` /
    ``redis+cluster://seed-host:port``."""
    if url.startswith("memory://"):
        return MemoryStorage(clock, max_keys)
    return RedisStorage(url, breaker=breaker, fallback=MemoryStorage(clock, max_keys),
                        on_fallback=on_fallback)
