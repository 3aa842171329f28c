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
        served: list[float] = []
        written = asyncio.Event()

        async def probe() -> None:  # other requests of the same worker, one after another
            while not written.is_set():
                assert (await client.get("/ping")).text == "pong"
                served.append(time.monotonic())
                await asyncio.sleep(0.002)

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.02)
        r = await client.put("/items/1", content=b"x")
        done = time.monotonic()
        written.set()
        await prober
        assert r.text == "ok"
        store = gate.control.cache.store  # type: ignore[union-attr]
        # read-after-write: the response waited for the invalidation's try (it hung)...
        assert done - cut_at[0] >= 0.2
        assert store.counts["invalidations failed"] == 1 and store.pending  # kept: blind
        # ... while the loop kept answering the others
        during = [cut_at[0], *(t for t in served if cut_at[0] < t < done), done]
        gaps = [b - a for a, b in pairwise(during)]
        assert len(during) >= 5 and max(gaps) < MAX_GAP, (len(during), max(gaps))
        stats = gate.stats()["response_cache"]
        assert stats["invalidations"]["writes"] == 2  # admitted and finished, once each
        relay.heal()
        deadline = time.monotonic() + 5.0
        while store.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not store.pending  # replayed once Redis answers
        await client.aclose()
