"""The shared store (``response_cache_storage="redis://..."``): entries and the
invalidation generation in Redis, so every worker process serves what one stored and a
write seen by any of them invalidates for all.

Keys (one Redis Cluster slot: the ``{prefix}`` hash tag; ``redis+cluster://`` talks to a
cluster, and every script -- whose keys, declared or built in Lua, all carry the tag
-- runs on the one node owning that slot): ``{prefix}:e:<key>`` an entry
(a hash: ``m`` its metadata as JSON, ``b`` its body; expiring after its fresh time plus
the stale window, Redis's own clock), ``{prefix}:gen`` the generation, ``{prefix}:ix``
the index (entry key -> ``"<method> <n> <route><path>"``, ``n`` the route's length in
bytes: what invalidation matches on -- length-prefixed, as a raw path may hold any
character, a newline or a space among them: see :func:`index_value`),
``{prefix}:r:<key>`` the claim on a stale entry's refresh (``SET NX PX``).

One script per verb, each one round trip and atomic:

* **look-up** (on the request path, a :mod:`~pulsegate.flow` step: awaited under
  asyncio, blocking in threads): the generation, the entry and its remaining time, and
  -- for a GET finding it stale -- whether this request took the refresh on itself;
* **put** (off the request path, on the store's writer thread): stored only if the
  generation is still the one the capture began in, and the index holds fewer than
  ``max_entries`` live entries;
* **invalidate** (a write's admission: a flow step; its finish and
  :func:`~pulsegate.respcache.invalidate`: blocking): ``INCR`` the generation, then drop
  the indexed entries a target names -- :meth:`~.targets.Target.matches` again, in Lua,
  on the ``(method, kind, value)`` triples of :meth:`~.targets.Target.wire` -- and
  the index fields of expired entries.

Fail open for reads, closed for invalidation: a failed look-up (Redis down, a timeout,
the circuit breaker open) is a miss, and nothing is stored from it (its generation is
unknown) -- a worker cut off from Redis serves nothing from it, so never an entry
another worker invalidated meanwhile. A failed invalidation is kept (at most
``MAX_PENDING`` targets, then "everything") and replayed -- ``INCR`` and drop, as
ever -- by the writer thread every ``REPLAY_EVERY`` seconds until Redis takes it; until
then this process's look-ups are *blind* (misses: Redis may hold what the write should
have dropped), after it they are not (the replay dropped it, and its ``INCR`` turns
away every put captured before). The other workers, which reached Redis, serve what
the write should have dropped until the replay or the entry's expiry: for at most
``min(time cut off + REPLAY_EVERY, ttl + stale)`` -- nobody could tell Redis. Faults
are counted in ``gate.faults`` (``respcache.redis``).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pulsegate.control.breaker import CircuitBreaker
from pulsegate.flow import Flow
from pulsegate.respcache.store import Entry, Found
from pulsegate.respcache.targets import EVERYTHING, Target

LOOKUP = """
local gen = redis.call('GET', KEYS[3]) or '0'
local v = redis.call('HMGET', KEYS[1], 'm', 'b')
if not v[1] then return {gen} end
local pttl = redis.call('PTTL', KEYS[1])
local claimed = 0
local stale = tonumber(ARGV[1])
if ARGV[2] == '1' and stale > 0 and pttl >= 0 and pttl <= stale then
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', stale) then claimed = 1 end
end
return {gen, v[1], v[2], pttl, claimed}
"""

PUT = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 0
    and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[7]) then
  local ix = redis.call('HKEYS', KEYS[3])
  for i = 1, #ix do
    if redis.call('EXISTS', ARGV[8] .. ix[i]) == 0 then redis.call('HDEL', KEYS[3], ix[i]) end
  end
  if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[7]) then return -1 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm', ARGV[3], 'b', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
return 1
"""

INVALIDATE = """
local gen = redis.call('INCR', KEYS[1])
local ix = redis.call('HGETALL', KEYS[2])
local dropped = 0
for i = 1, #ix, 2 do
  local field, v = ix[i], ix[i + 1]
  -- "<method> <n> <route><path>", n the route's bytes (index_value); a value it cannot
  -- read (another version's) is dropped: always safe
  local sp = string.find(v, ' ', 1, true)
  local sp2 = sp and string.find(v, ' ', sp + 1, true)
  local n = sp2 and tonumber(string.sub(v, sp + 1, sp2 - 1))
  local hit = not n or n < 0 or sp2 + n > #v
  if not hit then
    local method, route, path = string.sub(v, 1, sp - 1), string.sub(v, sp2 + 1, sp2 + n),
        string.sub(v, sp2 + n + 1)
    for j = 2, #ARGV, 3 do
      local m, kind, val = ARGV[j], ARGV[j + 1], ARGV[j + 2]
      if m == '' or m == method then
        if kind == 'prefix' then hit = string.sub(path, 1, #val) == val
        elseif kind == 'route' then hit = route == val
        else hit = path == val end
      end
      if hit then break end
    end
  end
  if hit then
    dropped = dropped + redis.call('DEL', ARGV[1] .. field)
    redis.call('HDEL', KEYS[2], field)
  elseif redis.call('EXISTS', ARGV[1] .. field) == 0 then
    redis.call('HDEL', KEYS[2], field)
  end
end
return {gen, dropped}
"""

#: Puts and drops waiting for the writer thread, at most (more are counted, not sent).
MAX_QUEUED = 256
#: Targets of failed invalidations kept for the replay, at most (then: everything).
MAX_PENDING = 64
#: Seconds between two replays of failed invalidations while Redis cannot be reached.
REPLAY_EVERY = 1.0


class RedisStore:
    """Entries shared by every process through Redis (see the module's docstring)."""

    #: Entries another process may have stored and may serve.
    shared = True

    def __init__(self, url: str, prefix: str, max_entries: int,
                 on_fault: Callable[[BaseException], None], *, socket_timeout: float = 0.25,
                 client: Any = None) -> None:
        self.url = url
        self.socket_timeout = socket_timeout
        self.client = client if client is not None else connect(url, socket_timeout)
        tag = "{" + prefix + "}"
        self.gen_key, self.index_key = f"{tag}:gen", f"{tag}:ix"
        self.entry_prefix, self.refresh_prefix = f"{tag}:e:", f"{tag}:r:"
        self.max_entries = max_entries
        self.on_fault = on_fault
        self.breaker = CircuitBreaker(5, 30.0, clock=time.monotonic)
        #: Failed invalidations' targets, by wire form, until replayed; look-ups are
        #: blind while there are any.
        self.pending: dict[tuple[str, str, str], Target] = {}
        self.counts: Counter[str] = Counter()
        self.scripts = {name: self.client.register_script(text)
                        for name, text in (("lookup", LOOKUP), ("put", PUT),
                                           ("invalidate", INVALIDATE))}
        self._async: tuple[Any, dict[str, Any]] | None = None
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(MAX_QUEUED)
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- the verbs ------------------------------------------------------------------------

    def lookup(self, key: bytes, now: float, stale: float, claim: bool) -> Found | Flow[Found]:
        """A miss at once while blind or the breaker is open, else a one-step flow."""
        if self.pending or not self.breaker.allow():
            self.counts["lookups skipped"] += 1
            return Found(None, False, -1)
        return self._lookup(key, now, stale, claim)

    def _lookup(self, key: bytes, now: float, stale: float, claim: bool) -> Flow[Found]:
        hexkey = key.hex()
        try:
            with self.breaker.guard():
                res = yield Script(self, "lookup", [
                    self.entry_prefix + hexkey, self.refresh_prefix + hexkey, self.gen_key],
                    [int(stale * 1000), "1" if claim else "0"])
                return self._found(res, now)
        except Exception as exc:  # Redis, a timeout, a malformed answer: a miss
            self._fault(exc)
            return Found(None, False, -1)

    def _found(self, res: Any, now: float) -> Found:
        generation = int(res[0])
        if len(res) < 5:
            return Found(None, False, generation)
        meta = json.loads(res[1])
        remaining = max(0, int(res[3])) / 1000.0
        stale_until = now + remaining
        entry = Entry(meta["e"], meta["p"], meta["t"], [(k, v) for k, v in meta["h"]],
                      bytes(res[2]), bytes.fromhex(meta["d"]),
                      now - max(0.0, meta["l"] - remaining), stale_until - meta["s"],
                      stale_until)
        return Found(entry, bool(int(res[4])), generation)

    def put(self, key: bytes, entry: Entry, generation: int) -> None:
        """Queued for the writer thread; the script stores it only if ``generation`` is
        still Redis's (counted there as ``stored`` or ``discarded``). A capture whose
        look-up failed (generation -1: unknown) is discarded here, never sent."""
        if generation < 0:
            self.counts["discarded"] += 1
            return
        self._enqueue(("put", key, entry, generation))

    def drop(self, key: bytes, entry: Entry | None = None) -> None:
        self._enqueue(("drop", key))

    def invalidate(self, targets: Sequence[Target]) -> Flow[int]:
        """Bump the shared generation and drop what ``targets`` name (a one-step flow).
        On failure: 0, and the targets are kept for the writer thread's replay (look-ups
        blind until it succeeds)."""
        try:
            if not self.breaker.allow():
                raise ConnectionError("the circuit breaker is open")
            with self.breaker.guard():
                res = yield Script(self, "invalidate", [self.gen_key, self.index_key],
                                   self._wire(targets))
                return int(res[1])
        except Exception as exc:
            self._keep(targets)
            self.counts["invalidations failed"] += 1
            self._fault(exc)
            return 0

    def _wire(self, targets: Sequence[Target]) -> list[str]:
        args: list[str] = [self.entry_prefix]
        for target in targets:
            args.extend(target.wire())
        return args

    def _keep(self, targets: Sequence[Target]) -> None:
        """Keep failed targets for the replay (bounded: past ``MAX_PENDING``, the one
        target "everything" stands for them all) and wake the writer thread."""
        with self._lock:
            if EVERYTHING[0].wire() not in self.pending:
                self.pending.update((t.wire(), t) for t in targets)
                if len(self.pending) > MAX_PENDING:
                    self.pending = {EVERYTHING[0].wire(): EVERYTHING[0]}
        self._enqueue(("replay",))

    def _replay(self) -> None:
        """One attempt at the failed invalidations (the writer thread; never the
        breaker's: it guards the request path)."""
        with self._lock:
            targets = list(self.pending.values())
        if not targets:
            return
        try:
            self.scripts["invalidate"](keys=[self.gen_key, self.index_key],
                                       args=self._wire(targets))
        except Exception:
            self.counts["replays failed"] += 1
            return
        with self._lock:
            for target in targets:
                self.pending.pop(target.wire(), None)
        self.counts["invalidations replayed"] += 1

    def stats(self) -> dict[str, Any]:
        try:
            entries: int | None = int(self.client.hlen(self.index_key))
        except Exception:
            entries = None
        return {"store": "redis", "entries": entries, "blind": bool(self.pending),
                **{k.replace(" ", "_"): v for k, v in self.counts.items()}}

    # --- the writer thread -----------------------------------------------------------------

    def _enqueue(self, job: tuple[Any, ...]) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write, daemon=True,
                                                    name="pulsegate-respcache-redis")
                    self._writer.start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.counts["writes dropped"] += 1

    def flush(self) -> None:
        """Wait until every queued put and drop is done (tests, shutdown)."""
        self._queue.join()

    def _write(self) -> None:
        while True:
            try:  # (while invalidations are pending: woken every REPLAY_EVERY to retry)
                job = self._queue.get(timeout=REPLAY_EVERY if self.pending else None)
            except queue.Empty:
                self._replay()
                continue
            try:
                if job[0] == "replay":
                    self._replay()
                elif self.breaker.allow():
                    with self.breaker.guard():
                        self._apply(job)
                else:
                    self.counts["writes skipped"] += 1
            except Exception as exc:
                self._fault(exc)
            finally:
                self._queue.task_done()

    def _apply(self, job: tuple[Any, ...]) -> None:
        hexkey = job[1].hex()
        if job[0] == "drop":
            self.client.pipeline().delete(self.entry_prefix + hexkey).hdel(
                self.index_key, hexkey).execute()
            return
        entry: Entry = job[2]
        life = entry.stale_until - entry.stored_at
        meta = json.dumps({"e": entry.endpoint, "p": entry.path, "t": entry.content_type,
                           "h": entry.headers, "d": entry.digest.hex(), "l": life,
                           "s": entry.stale_until - entry.fresh_until})
        done = int(self.scripts["put"](
            keys=[self.entry_prefix + hexkey, self.gen_key, self.index_key],
            args=[job[3], max(1, int(life * 1000)), meta, entry.body, hexkey,
                  index_value(entry.endpoint, entry.path), self.max_entries,
                  self.entry_prefix]))
        self.counts["stored" if done == 1 else "discarded" if done == 0 else "full"] += 1

    def _fault(self, exc: BaseException) -> None:
        self.counts["faults"] += 1
        try:
            self.on_fault(exc)
        except Exception:
            pass

    # --- I/O, blocking or awaited ------------------------------------------------------------

    def async_scripts(self) -> dict[str, Any]:
        """The scripts on an asyncio client of the running loop (one per loop)."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = connect(self.url, self.socket_timeout, asynchronous=True)
            self._async = (loop, {name: client.register_script(text) for name, text in
                                  (("lookup", LOOKUP), ("invalidate", INVALIDATE))})
        return self._async[1]

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def index_value(endpoint: str, path: str) -> bytes:
    """The index's value of an entry: ``"<method> <n> <route><path>"``, the query
    dropped from ``path``, ``n`` the route's length in UTF-8 bytes -- so no path (a raw
    one is the client's: ``%0A`` decoded to a newline, spaces) can move where the
    INVALIDATE script reads the route and the path."""
    method, _, route = endpoint.partition(" ")
    raw = route.encode()
    return b"%s %d %s%s" % (method.encode(), len(raw), raw, path.partition("?")[0].encode())


def connect(url: str, timeout: float, *, asynchronous: bool = False) -> Any:
    """A redis-py client of ``url`` (the `redis` extra, imported here so the core needs
    no Redis): ``redis+cluster://seed:port`` a Redis Cluster client (any node as the
    seed; every key of the store is in one slot, so each script runs on one node)."""
    import redis
    import redis.asyncio as aredis
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    kind: Any
    if url.startswith("redis+cluster://"):
        kind, url = AsyncCluster if asynchronous else RedisCluster, "redis://" + url[16:]
    else:
        kind = aredis.Redis if asynchronous else redis.Redis
    return kind.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


class Script:
    """A :mod:`~pulsegate.flow` step: one script call, blocking or awaited."""

    __slots__ = ("args", "keys", "name", "store")

    def __init__(self, store: RedisStore, name: str, keys: list[str], args: list[Any]) -> None:
        self.store = store
        self.name = name
        self.keys = keys
        self.args = args

    def call(self) -> Any:
        return self.store.scripts[self.name](keys=self.keys, args=self.args)

    async def acall(self) -> Any:
        return await self.store.async_scripts()[self.name](keys=self.keys, args=self.args)

