"""The shared store under asyncio, against a real Redis reached through a relay the test
cuts (a partition: timeouts, tests/services.py): a write's finishing invalidation is
awaited, never a blocking call on the event loop, and still tried before the write's
response goes out."""

from __future__ import annotations

import asyncio
import time
import uuid
from itertools import pairwise
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate
from services import partition

#: The longest pause allowed between two answers on the loop while a write's
#: invalidation hangs (the store's socket timeout, 0.25 s, is what a blocking call costs).
MAX_GAP = 0.12


async def probed(client: httpx.AsyncClient, request: Any,
                 cut_at: list[float]) -> tuple[Any, float, list[float]]:
    """``request`` awaited while other requests of the same worker (``GET /ping``) go
    one after another: its answer, when it came, and the gaps between the answers from
    the cut until then."""
    served: list[float] = []
    over = asyncio.Event()

    async def probe() -> None:
        while not over.is_set():
            assert (await client.get("/ping")).text == "pong"
            served.append(time.monotonic())
            await asyncio.sleep(0.002)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.02)
    try:
        answer = await request
    except Exception as exc:
        answer = exc
    done = time.monotonic()
    await asyncio.sleep(0.3)  # (what the loop does after the answer: also never blocked)
    over.set()
    await prober
    during = [cut_at[0], *(t for t in served if t > cut_at[0])]
    return answer, done, [b - a for a, b in pairwise(during)]


async def test_other_requests_are_served_while_a_writes_finishing_invalidation_hangs(
        redis_service: Any) -> None:
    with partition(redis_service.port) as relay:
        cut_at: list[float] = []

        async def write(request: Request) -> Response:
            relay.cut()  # after the write's admission reached Redis; its finish will not
            cut_at.append(time.monotonic())
            return PlainTextResponse("ok")

        async def ping(request: Request) -> Response:
            return PlainTextResponse("pong")

        gate = PulseGate(response_cache=True, response_cache_routes=["/items/{id}"],
                         response_cache_storage=relay.url(),
                         response_cache_key_prefix="l" + uuid.uuid4().hex[:12])
        app = Starlette(routes=[Route("/items/{id}", write, methods=["PUT"]),
                                Route("/ping", ping)])
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=PulseGateMiddleware(app, gate=gate)),
            base_url="http://t")
        assert (await client.get("/ping")).text == "pong"
        r, done, gaps = await probed(client, client.put("/items/1", content=b"x"), cut_at)
        assert r.text == "ok"
        store = gate.control.cache.store  # type: ignore[union-attr]
        # read-after-write: the response waited for the invalidation's try (it hung)...
        assert done - cut_at[0] >= 0.2
        assert store.counts["invalidations failed"] == 1 and store.pending  # kept: blind
        # ... while the loop kept answering the others
        assert len(gaps) >= 4 and max(gaps) < MAX_GAP, (len(gaps), max(gaps))
        stats = gate.stats()["response_cache"]
        assert stats["invalidations"]["writes"] == 2  # admitted and finished, once each
        relay.heal()
        deadline = time.monotonic() + 5.0
        while store.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not store.pending  # replayed once Redis answers
        await client.aclose()


async def test_a_write_ending_without_its_last_chunk_invalidates_in_a_task(
        redis_service: Any) -> None:
    """No last body chunk (the app raised before answering): the controller's finish
    awaits the invalidation in a task -- on the loop, never blocking it."""
    with partition(redis_service.port) as relay:
        cut_at: list[float] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["method"] == "PUT":
                relay.cut()
                cut_at.append(time.monotonic())
                raise RuntimeError("the write failed")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"pong"})

        gate = PulseGate(response_cache=True, response_cache_routes=["/items/{id}"],
                         response_cache_storage=relay.url(),
                         response_cache_key_prefix="l" + uuid.uuid4().hex[:12])
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=PulseGateMiddleware(app, gate=gate)),
            base_url="http://t")
        assert (await client.get("/ping")).text == "pong"
        answer, _, gaps = await probed(client, client.put("/items/1", content=b"x"), cut_at)
        assert isinstance(answer, RuntimeError)
        assert len(gaps) >= 4 and max(gaps) < MAX_GAP, (len(gaps), max(gaps))
        cache = gate.control.cache  # type: ignore[union-attr]
        assert cache.store.counts["invalidations failed"] == 1 and cache.store.pending
        assert not cache.writing and not cache._tasks  # (nothing kept once done)
        relay.heal()
        await client.aclose()
