"""The shared store on a real Redis Cluster (three masters on loopback, started by
``services.redis_cluster``; with CI=true a missing redis-server fails, never skips): two
gates stand for two worker processes sharing only the cluster, through the real ASGI
middleware (the asyncio cluster client) and the store's blocking verbs (the sync one).
Every key of one store hashes to one slot, so each Lua script runs on one node."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cache_shop import Shop
from redis.crc import key_slot

from pulsegate import ConfigError
from pulsegate.engine import PulseGate
from pulsegate.flow import settle
from pulsegate.respcache.redis_store import RedisStore
from pulsegate.respcache.store import Entry
from pulsegate.respcache.targets import Target
from services import redis_cluster

pytestmark = pytest.mark.service


def cached(response: Any) -> bool:
    return response.headers.get("x-ml-optimization-applied") == "cache"


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[int]]:
    with redis_cluster(3) as ports:
        yield ports


def keys_of(ports: list[int], prefix: str) -> dict[int, list[bytes]]:
    """Each node's keys of the store ``prefix``, by port."""
    return {p: list(redis.Redis(port=p).scan_iter(match="{" + prefix + "}*")) for p in ports}


async def test_workers_share_entries_and_invalidations_on_a_cluster(cluster: list[int]) -> None:
    prefix = "k" + uuid.uuid4().hex[:12]
    # (each worker seeded by another node: the client finds the slot's owner itself)
    a = Shop(response_cache_storage=f"redis+cluster://127.0.0.1:{cluster[0]}",
             response_cache_key_prefix=prefix,
             response_cache_invalidate={"PUT /items/{id}": ["$path"]})
    b = Shop(response_cache_storage=f"redis+cluster://127.0.0.1:{cluster[2]}",
             response_cache_key_prefix=prefix,
             response_cache_invalidate={"PUT /items/{id}": ["$path"]})
    b.items = a.items
    await a.learn("/items/1")
    await a.learn("/items/2")
    a.gate.control.cache.store.flush()
    r = await b.get("/items/1")  # b never answered it
    assert cached(r) and r.text == "item apple" and b.calls.get("item", 0) == 0
    assert (await b.client.put("/items/1", content=b"fig")).text == "ok"
    r1, r2 = await a.get("/items/1"), await a.get("/items/2")
    assert not cached(r1) and r1.text == "item fig"
    assert cached(r2) and r2.text == "item pear"  # another path: kept
    # every key of the store on one node, in one slot
    found = keys_of(cluster, prefix)
    assert sum(1 for ks in found.values() if ks) == 1
    keys = [k for ks in found.values() for k in ks]
    assert len(keys) >= 3 and len({key_slot(k) for k in keys}) == 1
    for shop in (a, b):
        stats = shop.gate.stats()["response_cache"]
        assert stats.get("faults", 0) == 0 and stats["store"] == "redis"


def test_the_blocking_verbs_and_the_stale_refresh_claim_on_a_cluster(cluster: list[int]) -> None:
    """Stores of several apps spread over the nodes; each store's scripts stay in its slot."""
    prefixes = [f"app{i}-" + uuid.uuid4().hex[:6] for i in range(12)]
    assert len({key_slot(("{" + p + "}").encode()) // 5462 for p in prefixes}) > 1
    faults: list[BaseException] = []
    for prefix in prefixes[:4]:
        url = f"redis+cluster://127.0.0.1:{cluster[1]}"
        one = RedisStore(url, prefix, 10, faults.append)
        two = RedisStore(url, prefix, 10, faults.append)
        key = b"k" * 16
        one.put(key, Entry("GET /a", "/a", "text/plain", [], b"body", b"d" * 16,
                           0.0, -1.0, 30.0), 0)  # (already stale: within its window)
        one.flush()
        assert one.counts["stored"] == 1
        first = settle(two.lookup(key, 0.0, 30.0, True))
        second = settle(one.lookup(key, 0.0, 30.0, True))
        assert first.entry is not None and first.entry.body == b"body"
        assert [first.refresh, second.refresh] == [True, False]  # one refresher
        assert settle(two.invalidate([Target("/a")])) == 1
        assert settle(one.lookup(key, 0.0, 30.0, False)).entry is None
        assert two.stats()["entries"] == 0
        found = keys_of(cluster, prefix)
        assert sum(1 for ks in found.values() if ks) == 1  # (the generation, the claim)
    assert faults == []


def test_a_cluster_url_with_a_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        PulseGate(response_cache=True, response_cache_storage="redis+cluster://h:7000/3")
    assert "response_cache_storage" in str(info.value) and "redis+cluster" in str(info.value)
