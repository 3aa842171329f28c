"""The ASGI middleware under Starlette and FastAPI (in-process, TestClient)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from fakeclock import FakeClock
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.context import Rejection, RequestContext
from pulsegate.engine import PulseGate
from pulsegate.learn import BaselineStore, EndpointModel
from pulsegate.records import UNMATCHED, RequestRecord

# A request without SQL: the query headers are sent only when it ran some.
X_ML = {"x-ml-prediction-confidence", "x-ml-anomaly-score", "x-ml-optimization-applied",
        "x-ml-model-version"}


def recording_gate(**options: Any) -> tuple[PulseGate, list[RequestRecord]]:
    gate = PulseGate(**options)
    records: list[RequestRecord] = []
    gate.listeners.append(lambda record, ctx: records.append(record))
    return gate, records


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hi {request.path_params.get('name', '')}")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("handler failed")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def starlette_app(gate: PulseGate) -> Starlette:
    app = Starlette(routes=[
        Route("/hello/{name}", hello),
        Route("/boom", boom),
        Mount("/api", routes=[Route("/users/{uid:int}", hello),
                              Mount("/v2", routes=[Route("/items/{item}", hello)])]),
        WebSocketRoute("/ws", ws_echo),
    ])
    app.add_middleware(PulseGateMiddleware, gate=gate)
    return app


def test_headers_on_every_response_and_route_templates_with_mounts() -> None:
    gate, records = recording_gate()
    client = TestClient(starlette_app(gate))
    for path in ("/hello/ann", "/api/users/7", "/api/v2/items/x"):
        r = client.get(path)
        assert r.status_code == 200 and set(r.headers) >= X_ML
        assert 0.0 <= float(r.headers["x-ml-anomaly-score"]) <= 1.0
    assert [rec.route for rec in records] == [
        "/hello/{name}", "/api/users/{uid:int}", "/api/v2/items/{item}"]


def test_404_folds_into_unmatched_and_still_gets_headers() -> None:
    gate, records = recording_gate()
    client = TestClient(starlette_app(gate))
    for i in range(20):
        r = client.get(f"/random/{i}")
        assert r.status_code == 404 and "x-ml-model-version" in r.headers
    assert {rec.route for rec in records} == {UNMATCHED}
    assert len(gate.baselines) == 1


def test_unhandled_exception_recorded_as_500_and_reraised() -> None:
    gate, records = recording_gate()
    with pytest.raises(RuntimeError, match="handler failed"):
        TestClient(starlette_app(gate)).get("/boom")
    assert records[-1].status == 500 and records[-1].route == "/boom"
    r = TestClient(starlette_app(gate), raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500 and records[-1].error == "RuntimeError"


def test_streaming_full_duration_ends_at_the_last_chunk() -> None:
    clock = FakeClock(0.0)
    gate, records = recording_gate()
    gate.clock = clock

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            clock.t += 0.1
            yield f"chunk{i}".encode()
            await asyncio.sleep(0)

    async def stream(request: Request) -> StreamingResponse:
        clock.t += 0.05
        return StreamingResponse(chunks())

    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(PulseGateMiddleware, gate=gate)
    r = TestClient(app).get("/stream")
    assert r.content == b"chunk0chunk1chunk2"
    rec = records[-1]
    assert rec.ttfb_ms == pytest.approx(50.0)
    assert rec.duration_ms == pytest.approx(350.0)


def test_websocket_and_lifespan_pass_straight_through() -> None:
    gate, records = recording_gate()
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    closed: list[bool] = []
    original_close = gate.close
    gate.close = lambda: (closed.append(True), original_close())[1]  # type: ignore[method-assign]
    app = Starlette(routes=[WebSocketRoute("/ws", ws_echo)],
                    lifespan=contextlib.asynccontextmanager(lifespan))
    app.add_middleware(PulseGateMiddleware, gate=gate)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
    assert events == ["startup", "shutdown"]
    assert records == [] and gate.stats()["requests"] == 0
    assert closed == [True]  # the lifespan shutdown closed the gate (final snapshot)


def test_excluded_paths_get_no_headers_and_no_record() -> None:
    gate, records = recording_gate(exclude_paths=["/hello"])
    r = TestClient(starlette_app(gate)).get("/hello/x")
    assert r.status_code == 200 and not X_ML & set(r.headers)
    assert records == [] and gate.stats()["excluded"] == 1


@pytest.mark.parametrize(("mode", "expected"), [
    ("all", X_ML), ("safe", {"x-ml-optimization-applied", "x-ml-model-version"}),
    ("none", set())])
def test_header_exposure(mode: str, expected: set[str]) -> None:
    gate, _ = recording_gate(headers=mode)
    r = TestClient(starlette_app(gate)).get("/hello/x")
    assert {h for h in r.headers if h.startswith("x-ml-")} >= expected
    if mode != "all":
        assert {h for h in r.headers if h.startswith("x-ml-")} == expected


def test_body_and_app_headers_are_unchanged() -> None:
    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"x-app", b"1"), (b"set-cookie", b"a=1"),
                                (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": b"\x00\xffbinary"})

    gate, records = recording_gate()
    r = TestClient(PulseGateMiddleware(raw_app, gate=gate)).get(
        "/anything", headers={"x-odd": b"\xe9\xff\x01", "x-long": "a" * 16000})
    assert r.status_code == 201 and r.content == b"\x00\xffbinary"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"] and r.headers["x-app"] == "1"
    assert records[-1].route == UNMATCHED


def test_fastapi_routes_prefixes_and_mounted_subapps() -> None:
    gate, records = recording_gate()
    api = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    sub = FastAPI()

    @sub.get("/status/{code}")
    def status(code: str) -> dict[str, str]:
        return {"code": code}

    api.include_router(router)
    api.mount("/sub", sub)
    api.add_middleware(PulseGateMiddleware, gate=gate)
    client = TestClient(api)
    assert client.get("/v1/items/3").json() == {"id": 3}
    assert client.get("/sub/status/ok").json() == {"code": "ok"}
    r = client.post("/v1/items/3")  # 405 keeps the route it partially matched
    assert r.status_code == 405 and "x-ml-model-version" in r.headers
    assert [rec.route for rec in records] == ["/v1/items/{item_id}", "/sub/status/{code}",
                                              "/v1/items/{item_id}"]


def test_fastapi_include_router_prefixes_are_kept() -> None:
    """Routers included with a prefix (nested, and inside a mounted sub-app): two
    routers with the same inner path stay two endpoints."""
    gate, records = recording_gate()
    users, admin, inner = APIRouter(), APIRouter(), APIRouter()

    @users.get("/items/{item_id}")
    def user_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @admin.get("/items/{item_id}")
    def admin_item(item_id: int) -> dict[str, int]:
        return {"admin": item_id}

    @inner.get("/ping")
    def ping() -> str:
        return "pong"

    admin.include_router(inner, prefix="/deep")
    api = FastAPI()
    api.include_router(users, prefix="/api/v1")
    api.include_router(admin, prefix="/api/admin")
    sub = FastAPI()
    sub.include_router(inner, prefix="/inner")
    api.mount("/sub", sub)
    api.add_middleware(PulseGateMiddleware, gate=gate)
    client = TestClient(api)
    assert client.get("/api/v1/items/3").json() == {"id": 3}
    assert client.get("/api/admin/items/3").json() == {"admin": 3}
    assert client.get("/api/admin/deep/ping").json() == "pong"
    assert client.get("/sub/inner/ping").json() == "pong"
    assert [rec.route for rec in records] == [
        "/api/v1/items/{item_id}", "/api/admin/items/{item_id}", "/api/admin/deep/ping",
        "/sub/inner/ping"]


def test_set_endpoint_from_a_catch_all_starlette_route() -> None:
    import pulsegate

    gate, records = recording_gate()

    async def page(request: Request) -> PlainTextResponse:
        kind = request.path_params["path"].split("/", 1)[0]
        pulsegate.set_endpoint(f"/pages/{kind}")
        return PlainTextResponse(kind)

    app = Starlette(routes=[Route("/{path:path}", page)])
    client = TestClient(PulseGateMiddleware(app, gate=gate))
    for path in ("/breads/rye", "/blog/one", "/breads/spelt"):
        assert client.get(path).status_code == 200
    assert [rec.route for rec in records] == ["/pages/breads", "/pages/blog", "/pages/breads"]


def test_middleware_accepts_config_keywords() -> None:
    app = Starlette(routes=[Route("/hello/{name}", hello)])
    app.add_middleware(PulseGateMiddleware, headers="safe", warmup=5)
    r = TestClient(app).get("/hello/x")
    assert "x-ml-anomaly-score" not in r.headers and "x-ml-model-version" in r.headers


def test_rejection_from_admission_is_sent_instead_of_the_app() -> None:
    gate, records = recording_gate()
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    async def admit(ctx: RequestContext) -> Rejection:
        ctx.optimization = "throttle"
        return Rejection(429, "throttle", [("retry-after", "3")], b"slow down")

    gate.admit_async = admit  # type: ignore[method-assign]
    gate.control = object()  # the middleware awaits admission only when control exists
    r = TestClient(PulseGateMiddleware(app, gate=gate)).get("/x")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.headers["x-ml-optimization-applied"] == "throttle" and r.content == b"slow down"
    assert called == [] and records[-1].status == 429
    # a routed app: the refused request is still counted against its route
    routed = starlette_app(gate)
    r = TestClient(routed).get("/hello/bob")
    assert r.status_code == 429 and records[-1].route == "/hello/{name}"


def test_client_disconnect_before_body_still_finishes() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        # the client went away: the app stops without a final chunk

    gate, records = recording_gate()
    TestClient(PulseGateMiddleware(app, gate=gate)).get("/x")
    assert len(records) == 1 and records[0].status == 200


def test_internal_fault_leaves_the_response_untouched() -> None:
    class BrokenStore(BaselineStore):
        def get(self, key: str) -> EndpointModel:
            raise KeyError(key)

    gate, records = recording_gate()
    gate.baselines = BrokenStore(EndpointModel)
    r = TestClient(starlette_app(gate)).get("/hello/x")
    assert r.status_code == 200 and r.text == "hi x"
    assert not X_ML & set(r.headers)
    assert gate.stats()["internal_errors"] >= 2


def test_route_templates_when_wrapping_a_starlette_app_directly() -> None:
    gate, records = recording_gate()
    inner = Starlette(routes=[Mount("/api", routes=[Route("/users/{uid:int}", hello)])])
    client = TestClient(PulseGateMiddleware(inner, gate=gate))
    assert client.get("/api/users/3").status_code == 200
    assert records[-1].route == "/api/users/{uid:int}"
    info_routes = []

    async def admit(ctx: RequestContext) -> None:
        info_routes.append(ctx.info.route_resolver() if ctx.info.route_resolver else None)

    gate.admit_async = admit  # type: ignore[assignment,method-assign]
    gate.control = object()
    client.get("/api/users/4")
    assert info_routes == ["/api/users/{uid:int}"]  # resolvable before the app runs


def test_starlette_and_fastapi_test_clients_are_learned_once_per_request() -> None:
    # issue 20, build item 3: a request served through TestClient is finished at its
    # last body message, exactly once, also for a streamed body.
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b", b"c"]))

    gate = PulseGate(warmup=5)
    records: list[RequestRecord] = []
    gate.listeners.append(lambda record, ctx: records.append(record))
    app.add_middleware(PulseGateMiddleware, gate=gate)
    client = TestClient(app)
    for i in range(150):
        assert client.get(f"/items/{i}").status_code == 200
    assert client.get("/stream").content == b"abc"
    assert gate.stats()["requests"] == 151 and len(records) == 151
    assert int(client.get("/items/1").headers["x-ml-prediction-confidence"]) > 0
