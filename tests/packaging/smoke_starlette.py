"""pulsegate[starlette] as installed: the middleware line on a bare Starlette app."""

from __future__ import annotations

from smoke_common import asgi_get, check_installed, ml_headers
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware

check_installed()


async def item(request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/items/{item_id}", item)])
app.add_middleware(PulseGateMiddleware, exclude_paths=["/health"])

first = ml_headers(asgi_get(app, "/items/1")[1])
for i in range(30):
    status, headers, _ = asgi_get(app, f"/items/{i}")
assert status == 200
shown = ml_headers(headers)
print(first, shown, sep="\n")
assert "x-ml-query-count" not in shown and shown["x-ml-optimization-applied"] == "none"
assert "x-ml-predicted-latency-ms" in shown and "x-ml-predicted-latency-ms" not in first
mw = app.middleware_stack
while not isinstance(mw, PulseGateMiddleware):
    mw = mw.app
assert [r["endpoint"] for r in mw.gate.endpoints()] == ["GET /items/{item_id}"], mw.gate.endpoints()
print("starlette smoke: ok")
