"""The shared store against a real Redis (started on loopback by the test set-up; with
CI=true a missing Redis fails, never skips): two gates stand for two worker processes
-- nothing is shared between them but Redis -- behind the real ASGI middleware (the
look-up awaited on the loop) and Flask's WSGI one (blocking); and a real second worker
process (wsgiref) beside this one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cache_shop import Shop
from cache_worker import build

from pulsegate import ConfigError
from pulsegate.engine import PulseGate
from services import free_port, partition, wait_port


def cached(response: Any) -> bool:
    return response.headers.get("x-ml-optimization-applied") == "cache"


def pair(url: str, **options: Any) -> tuple[Shop, Shop]:
    """Two workers of one app: their own gates, one database (items), one Redis."""
    prefix = "t" + uuid.uuid4().hex[:12]
    a = Shop(response_cache_storage=url, response_cache_key_prefix=prefix, **options)
    b = Shop(response_cache_storage=url, response_cache_key_prefix=prefix, **options)
    b.items = a.items
    return a, b


def flush(*shops: Shop) -> None:
    for shop in shops:
        shop.gate.control.cache.store.flush()


async def test_an_entry_one_worker_stored_is_served_by_another(redis_service: Any) -> None:
    a, b = pair(redis_service.url)
    await a.learn("/items/1")
    flush(a)
    assert a.gate.stats()["response_cache"]["stored"] >= 1
    r = await b.get("/items/1")  # b never answered it
    assert cached(r) and r.text == "item apple" and b.calls.get("item", 0) == 0
    assert int(r.headers["content-length"]) == len("item apple")
    r = await b.client.head("/items/1")
    assert cached(r) and r.content == b""


async def test_a_write_one_worker_sees_invalidates_every_workers_reads(
        redis_service: Any) -> None:
    a, b = pair(redis_service.url)
    await a.learn("/items/1")
    flush(a)
    assert cached(await a.get("/items/1")) and cached(await b.get("/items/1"))
    assert (await b.client.put("/items/1", content=b"banana")).text == "ok"
    r = await a.get("/items/1")  # a never saw the write
    assert not cached(r) and r.text == "item banana"
    stats = b.gate.stats()["response_cache"]
    assert stats["invalidations"]["writes"] == 2 and stats["invalidated"] >= 1


async def test_a_response_produced_during_another_workers_write_is_never_stored(
        redis_service: Any) -> None:
    a, b = pair(redis_service.url)
    await a.learn("/items/1")
    flush(a)
    await b.client.put("/items/1", content=b"apple")  # (same value: entries dropped)

    async def write() -> None:  # while a produces its answer, b writes
        await b.client.put("/items/1", content=b"cherry")

    a.during = write
    r = await a.get("/items/1")
    assert not cached(r) and r.text == "item apple"
    flush(a)
    for shop in (a, b, a):
        r = await shop.get("/items/1")
        assert r.text == "item cherry"
    assert a.gate.control.cache.store.counts["discarded"] >= 1


async def test_configured_rules_invalidate_across_workers(redis_service: Any) -> None:
    a, b = pair(redis_service.url, response_cache_invalidate={"PUT /items/{id}": ["$path"]})
    await a.learn("/items/1")
    await a.learn("/items/2")
    flush(a)
    await b.client.put("/items/1", content=b"fig")
    r1, r2 = await a.get("/items/1"), await a.get("/items/2")
    assert not cached(r1) and r1.text == "item fig"
    assert cached(r2) and r2.text == "item pear"  # another path: kept
    assert b.gate.control.cache.invalidate("/items*") >= 1
    assert not cached(await a.get("/items/2"))


async def test_redis_down_reads_go_to_the_app_and_a_failed_invalidation_blinds_until_replayed(
        redis_instance: Any) -> None:
    a, b = pair(redis_instance.url)
    await a.learn("/items/1")
    flush(a)
    assert cached(await a.get("/items/1"))
    redis_instance.stop()
    r = await a.get("/items/1")  # fail open: the app answers
    assert not cached(r) and r.text == "item apple"
    await a.client.put("/items/1", content=b"kiwi")  # its invalidation cannot be done
    stats = a.gate.stats()["response_cache"]
    assert stats["blind"] and stats["invalidations_failed"] >= 1
    assert sum(n for kind, n in a.gate.faults.by_kind.items()
               if kind.startswith("respcache.redis:")) >= 2
    r = await a.get("/items/1")  # blind: a miss, without asking Redis
    assert not cached(r) and r.text == "item kiwi"
    redis_instance.start()
    assert until(lambda: not a.gate.stats()["response_cache"]["blind"], 5.0)  # replayed
    assert a.gate.control.cache.store.counts["invalidations replayed"] >= 1
    await b.learn("/items/1")  # b learns and stores again; a serves it (not blind now)
    flush(b)
    reads = [await a.get("/items/1") for _ in range(3)]  # (the first may find a pooled
    assert all(r.text == "item kiwi" for r in reads)     # connection to the dead server)
    assert any(cached(r) for r in reads)


def until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_a_worker_cut_off_from_redis_serves_nothing_and_its_writes_reach_the_others_later(
        redis_service: Any) -> None:
    """Worker a reaches Redis through a relay that the test cuts (a partition: timeouts),
    worker b directly: Redis is unreachable to a only."""
    with partition(redis_service.port) as relay:
        prefix = "c" + uuid.uuid4().hex[:12]
        a = Shop(response_cache_storage=relay.url(), response_cache_key_prefix=prefix)
        b = Shop(response_cache_storage=redis_service.url, response_cache_key_prefix=prefix)
        b.items = a.items
        await a.learn("/items/1")
        flush(a)
        assert cached(await a.get("/items/1")) and cached(await b.get("/items/1"))
        relay.cut()
        # b writes: a, cut off, never serves what b's write invalidated -- it serves
        # nothing from Redis (each look-up a miss: a timeout, then the breaker's skip)
        assert (await b.client.put("/items/1", content=b"banana")).text == "ok"
        for _ in range(8):
            r = await a.get("/items/1")
            assert not cached(r) and r.text == "item banana"
        await b.learn("/items/1")
        flush(b)
        assert cached(await b.get("/items/1"))
        # a writes: it cannot tell Redis; b serves the entry the write should have
        # dropped (nobody told Redis) until a's replay -- or the entry's expiry
        assert (await a.client.put("/items/1", content=b"cherry")).text == "ok"
        assert a.gate.stats()["response_cache"]["blind"]
        r = await b.get("/items/1")
        assert cached(r) and r.text == "item banana"  # the window this bounds
        time.sleep(1.5)  # (replays keep failing while cut)
        assert a.gate.control.cache.store.counts["replays failed"] >= 1
        relay.heal()
        healed = time.monotonic()
        assert until(lambda: not a.gate.stats()["response_cache"]["blind"], 5.0)
        assert time.monotonic() - healed < 2.5  # within REPLAY_EVERY (+ a loaded machine)
        r = await b.get("/items/1")
        assert not cached(r) and r.text == "item cherry"


def test_failed_invalidations_are_kept_in_bounded_memory_and_replayed(
        redis_service: Any) -> None:
    from pulsegate.flow import settle
    from pulsegate.respcache.redis_store import MAX_PENDING, RedisStore
    from pulsegate.respcache.store import Entry
    from pulsegate.respcache.targets import Target

    prefix = "m" + uuid.uuid4().hex[:12]
    with partition(redis_service.port) as relay:
        cut = RedisStore(relay.url(), prefix, 100, lambda exc: None)
        other = RedisStore(redis_service.url, prefix, 100, lambda exc: None)
        for i in range(3):
            other.put(bytes([i]) * 16, Entry("GET /p/{id}", f"/p/{i}", "text/plain", [],
                                             b"x", b"d" * 16, 0.0, 60.0, 60.0), 0)
        other.flush()
        relay.cut()
        for i in range(MAX_PENDING):  # (a client's paths: many distinct targets)
            assert settle(cut.invalidate([Target.path(f"/p/{i}")])) == 0
        assert len(cut.pending) == MAX_PENDING
        settle(cut.invalidate([Target.path("/p/one-too-many")]))
        assert [t.wire() for t in cut.pending.values()] == [("", "prefix", "")]  # everything
        assert other.stats()["entries"] == 3  # nobody told Redis yet
        relay.heal()
        assert until(lambda: not cut.pending, 5.0)
        assert other.stats()["entries"] == 0
        assert settle(other.lookup(b"\x00" * 16, 0.0, 0.0, False)).generation >= 1


def test_flask_workers_share_entries_and_invalidations(redis_service: Any) -> None:
    from flask import Flask, request

    prefix = "f" + uuid.uuid4().hex[:12]
    items = {"1": "apple"}
    calls = {"item": 0}

    def worker() -> Any:
        app = Flask(__name__)

        @app.route("/items/<pk>", methods=["GET", "PUT"])
        def item(pk: str) -> str:
            if request.method == "PUT":
                items[pk] = request.get_data(as_text=True)
                return "ok"
            calls["item"] += 1
            return f"item {items[pk]}"

        from pulsegate.flask import PulseGate as FlaskPulseGate
        gate = PulseGate(response_cache=True, response_cache_routes=["/items/<pk>"],
                         response_cache_min_saving_ms=0.0,
                         response_cache_storage=redis_service.url,
                         response_cache_key_prefix=prefix)
        FlaskPulseGate(app, gate=gate)
        return app, gate

    (app_a, gate_a), (app_b, _) = worker(), worker()
    a, b = app_a.test_client(), app_b.test_client()
    for _ in range(12):
        a.get("/items/1")
    gate_a.control.cache.store.flush()
    produced = calls["item"]
    r = b.get("/items/1")
    assert cached(r) and r.text == "item apple" and calls["item"] == produced
    assert a.put("/items/1", data="plum").text == "ok"
    r = b.get("/items/1")
    assert not cached(r) and r.text == "item plum"


def test_a_bad_storage_url_or_prefix_is_a_config_error() -> None:
    for options in ({"response_cache_storage": "mysql://x"},
                    {"response_cache_storage": "redis://"},
                    {"response_cache_key_prefix": "a b"}, {"response_cache_key_prefix": ""}):
        with pytest.raises(ConfigError) as info:
            PulseGate(response_cache=True, **options)
        assert next(iter(options)) in str(info.value)


def test_two_worker_processes_share_entries_and_invalidations(redis_service: Any,
                                                              tmp_path: Path) -> None:
    """Worker B is a real second process (wsgiref); worker A is this one."""
    items = tmp_path / "items.json"
    items.write_text(json.dumps({"1": "apple"}))
    prefix = "p" + uuid.uuid4().hex[:12]
    port = free_port()
    worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cache_worker.py")),
                               redis_service.url, prefix, str(items), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        wsgi, gate = build(redis_service.url, prefix, items)
        # (both clients httpx: the same accept/accept-encoding, which key the entries;
        # the same Host, as behind one load balancer: the host keys them too)
        host = {"host": "shop.example"}
        a = httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://a",
                         headers=host)
        b = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, headers=host)
        for _ in range(12):  # A learns the route and stores the entry
            assert a.get("/items/1").text == "item apple"
        gate.control.cache.store.flush()
        assert gate.stats()["response_cache"]["stored"] >= 1
        r = b.get("/items/1")  # B, which never answered it, serves A's entry
        assert cached(r) and r.text == "item apple"
        assert b.put("/items/1", content=b"banana").text == "ok"  # B sees a write ...
        r = a.get("/items/1")  # ... and A's next read is the app's, with the new body
        assert not cached(r) and r.text == "item banana"
        for _ in range(12):  # A learns it again; a write through A reaches B
            a.get("/items/1")
        gate.control.cache.store.flush()
        assert cached(b.get("/items/1"))
        assert a.put("/items/1", content=b"cherry").text == "ok"
        r = b.get("/items/1")
        assert not cached(r) and r.text == "item cherry"
    finally:
        worker.kill()
        worker.wait(10)


def test_one_worker_refreshes_a_stale_shared_entry_while_the_others_serve_it(
        redis_service: Any) -> None:
    from pulsegate.flow import settle
    from pulsegate.respcache.redis_store import RedisStore
    from pulsegate.respcache.store import Entry

    prefix = "s" + uuid.uuid4().hex[:12]
    workers = [RedisStore(redis_service.url, prefix, 10, lambda exc: None)
               for _ in range(3)]
    key = b"k" * 16
    # fresh for 0.1 s, then stale for 1.9 s (Redis's clock)
    workers[0].put(key, Entry("GET /a", "/a", "text/plain", [], b"body", b"d" * 16,
                              0.0, 0.1, 2.0), 0)
    workers[0].flush()
    fresh = settle(workers[1].lookup(key, 0.0, 1.9, True))
    assert fresh.entry is not None and fresh.entry.body == b"body" and not fresh.refresh
    time.sleep(0.3)
    found = [settle(w.lookup(key, 0.0, 1.9, True)) for w in workers]
    assert all(f.entry is not None and f.entry.fresh_until <= 0.0 for f in found)  # stale
    assert [f.refresh for f in found] == [True, False, False]  # one refresher in all
    assert not settle(workers[0].lookup(key, 0.0, 1.9, False)).refresh  # (a HEAD: never)


def test_a_raw_path_holding_a_newline_or_a_space_cannot_break_the_index(
        redis_service: Any) -> None:
    """A path no route matched keys its entry by itself (the client's: ``%0A`` and
    ``%20`` decoded by the server); invalidation still reads each entry's own path."""
    from pulsegate.flow import settle
    from pulsegate.respcache.redis_store import RedisStore
    from pulsegate.respcache.store import Entry
    from pulsegate.respcache.targets import Target

    def fill(store: RedisStore) -> None:
        for i, path in enumerate(("/a\n/b c", "/b c", "/a", "/é\n")):
            store.put(bytes([i]) * 16, Entry(f"GET {path}", f"{path}?q=1", "text/plain", [],
                                             b"x", b"d" * 16, 0.0, 60.0, 60.0), 0)
        store.flush()

    store = RedisStore(redis_service.url, "n" + uuid.uuid4().hex[:12], 100, lambda exc: None)
    fill(store)
    assert store.stats()["entries"] == 4
    assert settle(store.invalidate([Target.path("/a\n/b c")])) == 1
    assert settle(store.invalidate([Target.path("/b c\n/a\n/b c")])) == 0  # (what it was read as)
    assert settle(store.invalidate([Target("GET /a*")])) == 1  # "/a"; "/b c" stays
    assert settle(store.invalidate([Target.path("/é\n")])) == 1
    assert store.stats()["entries"] == 1
    # A value another version wrote (unreadable here) is dropped: always safe.
    store.client.hset(store.index_key, "ff" * 16, "GET /old\n/old")
    store.client.hset(store.entry_prefix + "ff" * 16, "m", "{}")
    assert settle(store.invalidate([Target.path("/nothing")])) == 1
    assert store.stats()["entries"] == 1
