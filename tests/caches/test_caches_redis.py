"""redis-py clients on a real Redis (started by the fixtures on loopback; never skipped):
reads, writes and deletes per pattern, pipelines, the asyncio client, per-request
headers, and a Redis that goes down."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import pulsegate.caches
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.caches.advice import pattern_rows
from pulsegate.caches.redis import uninstrument_redis
from pulsegate.engine import PulseGate

pytestmark = pytest.mark.service


@pytest.fixture()
def gate() -> Iterator[PulseGate]:
    gate = PulseGate()
    yield gate
    uninstrument_redis()
    gate.close()


def rows(gate: PulseGate) -> dict[str, dict[str, object]]:
    monitor = pulsegate.caches.monitor_of(gate)
    assert monitor is not None
    return {r["pattern"]: r for r in pattern_rows(monitor)}


def test_every_client_is_counted_per_pattern(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.caches.instrument(gate)
    client = redis.Redis.from_url(redis_service.url)
    client.set("user:1:name", b"ada", ex=60)
    client.setex("user:2:name", 30, "grace")
    assert client.get("user:1:name") == b"ada"
    assert client.get("user:3:name") is None
    assert client.mget(["user:1:name", "user:2:name", "user:4:name"]) == [b"ada", b"grace", None]
    client.delete("user:1:name", "user:2:name")
    client.ping()  # not a cache operation: passes through uncounted
    r = rows(gate)["user:{id}:name"]
    assert (r["hits"], r["misses"], r["sets"], r["deletes"]) == (3, 2, 2, 2)
    assert r["mean_ttl_s"] == 45.0
    assert r["max_bytes"] == 5
    name = next(iter(gate.stats()["caches"].keys() - {"patterns", "pattern_evictions",
                                                      "tracked_keys"}))
    assert name.startswith("redis 127.0.0.1:") and "@" not in name


def test_pipelines_are_counted_per_command(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.caches.instrument(gate)
    client = redis.Redis.from_url(redis_service.url)
    pipe = client.pipeline()
    pipe.set("cart:9", b"x", px=5000).get("cart:9").get("cart:10")
    assert pipe.execute() == [True, b"x", None]
    r = rows(gate)["cart:{id}"]
    assert (r["hits"], r["misses"], r["sets"]) == (1, 1, 1)
    assert r["mean_ttl_s"] == 5.0


async def test_the_asyncio_client(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.caches.instrument(gate)
    client = redis.asyncio.Redis.from_url(redis_service.url)
    try:
        await client.set("a:1", "v")
        assert await client.get("a:1") == b"v"
        assert await client.get("a:2") is None
    finally:
        await client.aclose()
    r = rows(gate)["a:{id}"]
    assert (r["hits"], r["misses"], r["sets"]) == (1, 1, 1)


def test_one_client_only(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    watched = redis.Redis.from_url(redis_service.url)
    other = redis.Redis.from_url(redis_service.url)
    pulsegate.caches.instrument(gate, watched)
    watched.get("w:1")
    other.get("o:1")
    assert set(rows(gate)) == {"w:{id}"}


def headers_app(gate: PulseGate, url: str) -> PulseGateMiddleware:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    async def page(request: Request) -> PlainTextResponse:
        try:
            await client.set("p:1", "v")
            hits = [await client.get(k) for k in ("p:1", "p:1", "p:2")]
        except redis.exceptions.ConnectionError:
            hits = []  # the app's own choice: serve without its cache
        return PlainTextResponse(str(len([h for h in hits if h])))

    return PulseGateMiddleware(Starlette(routes=[Route("/page", page)]), gate=gate)


async def test_per_request_headers(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.caches.instrument(gate)
    app = headers_app(gate, redis_service.url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        response = await http.get("/page")
    assert response.headers["x-ml-cache-hits"] == "2"
    assert response.headers["x-ml-cache-misses"] == "1"


async def test_no_cache_headers_when_headers_are_safe(redis_service) -> None:  # type: ignore[no-untyped-def]
    gate = PulseGate(headers="safe")
    try:
        pulsegate.caches.instrument(gate)
        app = headers_app(gate, redis_service.url)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as http:
            response = await http.get("/page")
        assert "x-ml-cache-hits" not in response.headers
    finally:
        uninstrument_redis()
        gate.close()


async def test_a_redis_that_is_down_fails_nothing_of_ours(redis_instance, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.caches.instrument(gate)
    app = headers_app(gate, redis_instance.url)
    redis_instance.stop()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        response = await http.get("/page")
    assert response.status_code == 200 and response.text == "0"
    assert rows(gate)["p:{id}"]["errors"] == 1
    assert gate.stats()["internal_errors"] == 0
