"""DNS rebinding against the loopback-only dashboard (issue 18, hole 5).

A page on ``evil.example`` whose DNS name is re-pointed at 127.0.0.1 makes the user's
own browser talk to the loopback port: the peer is loopback, and the page's requests
carry ``Host: evil.example`` and ``Origin: http://evil.example:8000``. Before, those
read ``/api/summary`` and posted feedback."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from exportkit import SECRET, FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.export import state
from pulsegate.export.dashboard import DashboardHandler, host_name, is_loopback_host
from pulsegate.export.endpoints import internal_endpoints, serve_wsgi

API = "/_pulsegate/api/summary"
FEEDBACK = "/_pulsegate/api/feedback"
EVIL = {"host": "evil.example:8000", "origin": "http://evil.example:8000"}


class H:
    def __init__(self, **headers: str) -> None:
        self.h = {k.replace("_", "-").lower(): v for k, v in headers.items()}

    def get(self, name: str, /) -> str | None:
        return self.h.get(name)


def loopback_dashboard(clock: FakeClock, **options: Any) -> DashboardHandler:
    gate = make_gate(clock, dashboard=True, dashboard_allow_loopback=True, **options)
    dash = state(gate).dashboard
    assert dash is not None
    return dash


def status(dash: DashboardHandler, method: str, path: str, headers: dict[str, str],
           peer: str = "127.0.0.1", body: bytes = b"") -> int:
    out = dash.handle(method, path, H(**headers), "", body, peer)
    assert out is not None
    return out[0]


def test_host_parsing() -> None:
    assert host_name("Example.COM:443") == "example.com"
    assert host_name("[::1]") == "::1" and host_name("[::1]x") is None
    assert host_name("localhost:") is None and host_name("localhost:99999999") is None
    for ok in ("localhost", "LOCALHOST:8000", "localhost.", "127.0.0.1", "127.9.9.9:1",
               "[::1]:8000"):
        assert is_loopback_host(ok), ok
    for bad in (None, "", "evil.example", "evil.example:8000", "localhost.evil.example",
                "127.0.0.1.nip.io", "[::1", "::1", "10.0.0.1", "0.0.0.0", "127.0.0.1:80:80"):
        assert not is_loopback_host(bad), bad


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example",
                                  None])
def test_rebinding_host_is_refused(clock: FakeClock, host: str | None) -> None:
    dash = loopback_dashboard(clock)
    headers = {"host": host} if host else {}
    assert status(dash, "GET", API, headers) == 404
    assert status(dash, "GET", "/_pulsegate/", headers) == 404
    assert status(dash, "GET", API, {"host": "localhost:8000"}) == 200


def test_rebinding_host_needs_the_token_when_one_is_set(clock: FakeClock) -> None:
    dash = loopback_dashboard(clock, dashboard_token=SECRET)
    assert status(dash, "GET", API, EVIL) == 401
    assert status(dash, "GET", API, {**EVIL, "authorization": f"Bearer {SECRET}"}) == 200


def test_state_changing_requests_need_a_same_origin_loopback_origin(clock: FakeClock) -> None:
    dash = loopback_dashboard(clock)
    body = json.dumps({"id": "nope", "correct": True}).encode()
    js = {"content-type": "application/json"}
    local = {"host": "localhost:8000", **js}
    # the dashboard page's own fetch: Origin is the page's origin -> reaches the handler
    assert status(dash, "POST", FEEDBACK, {**local, "origin": "http://localhost:8000"},
                  body=body) == 404  # unknown detection id: the request got through
    # a rebinding page: both Host and Origin are the attacker's
    assert status(dash, "POST", FEEDBACK, {**EVIL, **js}, body=body) == 404
    # a loopback Host, but the request comes from another origin, or says nothing
    for origin in ("http://evil.example:8000", "null", "http://127.0.0.1:8000",
                   "http://localhost:9999", "localhost:8000"):
        assert status(dash, "POST", FEEDBACK, {**local, "origin": origin}, body=body) == 403
    assert status(dash, "POST", FEEDBACK, local, body=body) == 403
    # reading stays open to a loopback client without an Origin (curl, the CLI)
    assert status(dash, "GET", API, {"host": "localhost:8000"}) == 200


def test_the_token_still_admits_writes_without_origin(clock: FakeClock) -> None:
    dash = loopback_dashboard(clock, dashboard_token=SECRET)
    body = json.dumps({"id": "nope", "correct": True}).encode()
    headers = {"host": "localhost:8000", "content-type": "application/json",
               "authorization": f"Bearer {SECRET}"}
    assert status(dash, "POST", FEEDBACK, headers, body=body) == 404  # got through
    assert status(dash, "POST", FEEDBACK, {**headers, "origin": "http://evil.example"},
                  body=body) == 403


@pytest.mark.parametrize("proxy_header", [
    ("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9"),
    ("x-real-ip", "203.0.113.9"), ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"), ("via", "1.1 nginx")])
def test_behind_a_proxy_loopback_says_nothing(clock: FakeClock,
                                               proxy_header: tuple[str, str]) -> None:
    """A proxy on the same host makes every peer 127.0.0.1 and may rewrite Host to the
    upstream's loopback address (nginx's default ``proxy_set_header Host
    $proxy_host``): any header a proxy writes turns loopback access off."""
    dash = loopback_dashboard(clock)
    name, value = proxy_header
    assert status(dash, "GET", API, {"host": "127.0.0.1:8000", name: value}) == 404


def _asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
                             base_url="http://localhost:8000")


async def test_rebinding_through_the_asgi_middleware(clock: FakeClock) -> None:
    gate = make_gate(clock, dashboard=True, dashboard_allow_loopback=True)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    async with _asgi_client(app) as client:
        assert (await client.get(API)).status_code == 200
        assert (await client.get(API, headers={"host": "evil.example:8000"})).status_code == 404
        r = await client.post(FEEDBACK, json={"id": "x", "correct": True}, headers=EVIL)
        assert r.status_code == 404 and "error" in r.json()
        r = await client.post(FEEDBACK, json={"id": "x", "correct": True},
                              headers={"origin": "http://evil.example:8000"})
        assert r.status_code == 403
        r = await client.post(FEEDBACK, json={"id": "x", "correct": True},
                              headers={"origin": "http://localhost:8000"})
        assert r.status_code == 404  # reached the feedback handler: unknown id
        r = await client.get(API, headers={"x-forwarded-for": "198.51.100.4"})
        assert r.status_code == 404


def test_rebinding_through_wsgi(clock: FakeClock) -> None:
    gate = make_gate(clock, dashboard=True, dashboard_allow_loopback=True)
    endpoints = internal_endpoints(gate)
    assert endpoints is not None
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append(status)

    def call(**extra: Any) -> str:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": API, "QUERY_STRING": "",
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost:8000",
                   "wsgi.input": io.BytesIO(), **extra}
        assert serve_wsgi(endpoints, environ, start_response) is not None
        return seen[-1]

    assert call().startswith("200")
    assert call(HTTP_HOST="evil.example:8000").startswith("404")
    assert call(HTTP_X_FORWARDED_FOR="198.51.100.4").startswith("404")
    body = json.dumps({"id": "x", "correct": True}).encode()
    post = {"REQUEST_METHOD": "POST", "PATH_INFO": FEEDBACK, "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body))}
    assert call(**post, HTTP_ORIGIN="http://evil.example:8000",
                **{"wsgi.input": io.BytesIO(body)}).startswith("403")
    assert call(**post, HTTP_ORIGIN="http://localhost:8000",
                **{"wsgi.input": io.BytesIO(body)}).startswith("404")
