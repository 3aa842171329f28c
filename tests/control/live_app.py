"""The app behind test_live_allocator.py, served by a real uvicorn in a subprocess.

Its handler emulates a server with CORES workers' worth of capacity under processor
sharing: each request's ``BASE`` seconds of work stretch by in-flight / CORES.
``/health/stats`` (excluded from control by default) reports the allocator."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate

BASE = 0.04
CORES = 2


def create() -> Starlette:
    gate = PulseGate(resource_allocation=True, target_latency_ms=120, cpu_threshold=1.0,
                     initial_concurrency=48, min_concurrency=2, max_concurrency=128,
                     max_queue_wait=0.05, max_queue=64, allocator_interval=0.25,
                     priority_rules={"/work/low": "low", "/work/high": "high"}, headers="safe")
    state = {"inflight": 0}

    async def work(request: Request) -> PlainTextResponse:
        state["inflight"] += 1
        try:
            await asyncio.sleep(BASE * max(1.0, state["inflight"] / CORES))
        finally:
            state["inflight"] -= 1
        return PlainTextResponse("done")

    async def stats(request: Request) -> JSONResponse:
        alloc = gate.control.allocator
        return JSONResponse({**alloc.stats(), "history": [lim for _, lim in alloc.history],
                             "counters": gate.counters})

    app = Starlette(routes=[Route("/work/low", work), Route("/work/high", work),
                            Route("/health/stats", stats)])
    app.add_middleware(PulseGateMiddleware, gate=gate)
    return app
