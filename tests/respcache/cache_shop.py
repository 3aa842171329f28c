"""A small Starlette shop behind the real ASGI middleware, with an injected clock: each
response the app produces takes 5 ms of it. Shared by the response cache's tests."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fakeclock import FakeClock
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate

#: The headers httpx (and werkzeug's test client) send on their own: every other one is the test's.
CLIENT_DEFAULTS = frozenset({"host", "accept", "accept-encoding", "connection", "user-agent",
                             "content-length"})
ROUTES = ["/items/{id}", "/me", "/cookie", "/private", "/random", "/big", "/missing", "/link"]


class Shop:
    def __init__(self, **options: Any) -> None:
        self.clock = clock = FakeClock(100.0)
        self.items = {"1": "apple", "2": "pear"}
        self.calls: dict[str, int] = {}
        self.during: Any = None  # an awaitable factory run inside the next GET /items
        self.n = 0
        opts: dict[str, Any] = {"response_cache": True, "response_cache_routes": ROUTES,
                                "response_cache_min_saving_ms": 0.0}
        opts.update(options)
        self.gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t, **opts)

        def produced(name: str) -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            clock.t += 0.005

        async def item(request: Request) -> Response:
            produced("item")
            snapshot = self.items.get(request.path_params["id"], "?")
            if self.during is not None:
                during, self.during = self.during, None
                await during()
            return PlainTextResponse(f"item {snapshot}")

        async def put_item(request: Request) -> Response:
            self.items[request.path_params["id"]] = (await request.body()).decode()
            return PlainTextResponse("ok")

        async def me(request: Request) -> Response:
            produced("me")
            # (an app may know its users by any header: here, by any the client chose)
            who = request.headers.get("authorization") or request.cookies.get("session") \
                or ",".join(v for k, v in request.headers.items() if k not in CLIENT_DEFAULTS) \
                or None
            return PlainTextResponse(f"hello {who}")

        async def cookie(request: Request) -> Response:
            produced("cookie")
            response = PlainTextResponse("with a cookie")
            response.set_cookie("session", "s1")
            return response

        async def private(request: Request) -> Response:
            produced("private")
            return PlainTextResponse("mine", headers={"cache-control": "private, max-age=60"})

        async def random(request: Request) -> Response:
            produced("random")
            self.n += 1
            return PlainTextResponse(f"n={self.n}")

        async def big(request: Request) -> Response:
            produced("big")
            return PlainTextResponse("x" * 5000)

        async def missing(request: Request) -> Response:
            produced("missing")
            return PlainTextResponse("gone", status_code=404)

        async def link(request: Request) -> Response:
            produced("link")  # an absolute link, from the Host the client sent (or the
            # proxy's X-Forwarded-Host, as Django's USE_X_FORWARDED_HOST or ProxyFix do)
            host = request.headers.get("x-forwarded-host") or request.headers["host"]
            return PlainTextResponse(f"see http://{host}{request.url.path}")

        app = Starlette(routes=[
            Route("/link", link),
            Route("/items/{id}", item, methods=["GET"]),
            Route("/items/{id}", put_item, methods=["PUT"]),
            Route("/me", me), Route("/cookie", cookie), Route("/private", private),
            Route("/random", random), Route("/big", big), Route("/missing", missing)])
        app.add_middleware(PulseGateMiddleware, gate=self.gate)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                        base_url="http://t")

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        self.clock.t += 0.1
        return await self.client.get(path, **kwargs)

    async def learn(self, path: str, n: int = 12, **kwargs: Any) -> httpx.Response:
        """``n`` identical GETs (enough to pass the default threshold)."""
        response = None
        for _ in range(n):
            response = await self.get(path, **kwargs)
        assert response is not None
        return response
