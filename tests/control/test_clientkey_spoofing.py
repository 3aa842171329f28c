"""No client picks its own rate-limit key (issue 18, hole 1): every shape of
``spoof_shapes`` through the ASGI and the WSGI middleware."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate
from pulsegate.records import RequestRecord
from pulsegate.wsgi import PulseGateWSGIMiddleware
from spoof_shapes import SHAPES, N, Shape, check, gate_options, joined


def keyed(gate: PulseGate) -> list[str | None]:
    keys: list[str | None] = []

    def listener(record: RequestRecord, ctx: Any) -> None:
        keys.append(record.client)

    gate.listeners.append(listener)
    return keys


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_asgi(shape: Shape) -> None:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    gate = PulseGate(**gate_options(shape))
    keys = keyed(gate)
    app = PulseGateMiddleware(Starlette(routes=[Route("/", ok)]), gate=gate)
    transport = httpx.ASGITransport(app=app, client=(shape.peer, 40000))
    statuses = []
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for i in range(N):
            # a list of pairs keeps repeated header lines apart, in order
            r = await client.get("/", headers=shape.headers(i))
            statuses.append(r.status_code)
    gate.close()
    check(shape, statuses, keys)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_wsgi(shape: Shape) -> None:
    def ok(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    gate = PulseGate(**gate_options(shape))
    keys = keyed(gate)
    app = PulseGateWSGIMiddleware(ok, gate=gate)
    statuses = []
    for i in range(N):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
                   "REMOTE_ADDR": shape.peer, "SERVER_NAME": "app", "SERVER_PORT": "80",
                   "wsgi.url_scheme": "http"}
        for name, value in joined(shape.headers(i)).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        seen: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None,
                           seen: list[str] = seen) -> None:
            seen.append(status)

        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        statuses.append(int(seen[0].split()[0]))
    gate.close()
    check(shape, statuses, keys)
