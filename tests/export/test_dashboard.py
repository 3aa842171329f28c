"""The dashboard's HTTP handling: access rules, the JSON API, feedback, the page's
security headers, and serving through the ASGI middleware and WSGI."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from exportkit import SECRET, FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.config import Config, ConfigError
from pulsegate.engine import PulseGate
from pulsegate.export import state
from pulsegate.export.dashboard import DashboardHandler, is_loopback
from pulsegate.export.endpoints import internal_endpoints, serve_wsgi

# These tests make N+1 patterns on purpose.
pytestmark = pytest.mark.pulsegate(nplusone="off")

AUTH = {"Authorization": f"Bearer {SECRET}"}


class H:
    """Header getter over a plain dict (lower-case names)."""

    def __init__(self, **headers: str) -> None:
        self.h = {k.replace("_", "-").lower(): v for k, v in headers.items()}

    def get(self, name: str, /) -> str | None:
        return self.h.get(name)


def handler(clock: FakeClock, **options: Any) -> tuple[DashboardHandler, PulseGate]:
    gate = make_gate(clock, dashboard=True, **options)
    dash = state(gate).dashboard
    assert dash is not None
    return dash, gate


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5000)),
                             base_url="http://testserver")


async def traffic(client: httpx.AsyncClient, n: int = 30, *, slow: int = 1, n1: int = 1) -> None:
    for i in range(n):
        await client.get(f"/work/{i}?ms={10 + i % 3}")
    for _ in range(slow):
        await client.get("/work/slow?ms=400")
    for _ in range(n1):
        await client.get("/work/n1?ms=10&n1=8")


def test_off_by_default_and_without_any_credential(clock: FakeClock) -> None:
    assert state(make_gate(clock)).dashboard is None
    # on, but neither a token nor loopback access: not served at all
    assert state(make_gate(clock, dashboard=True)).dashboard is None
    assert internal_endpoints(make_gate(clock, dashboard=True)) is None


def test_token_rules(clock: FakeClock) -> None:
    dash, _ = handler(clock, dashboard_token=SECRET)
    api = "/_pulsegate/api/summary"
    assert dash.handle("GET", "/elsewhere", H(), "", b"", "10.0.0.1") is None
    status, headers, _ = dash.handle("GET", api, H(), "", b"", "10.0.0.1")  # type: ignore[misc]
    assert status == 401 and ("www-authenticate", 'Bearer realm="pulsegate"') in headers
    assert dash.handle("GET", api, H(authorization="Bearer nope"), "", b"", None)[0] == 401  # type: ignore[index]
    assert dash.handle("GET", api, H(authorization=f"Bearer {SECRET}x"), "", b"", None)[0] == 401  # type: ignore[index]
    assert dash.handle("GET", api, H(authorization=f"Bearer {SECRET}"), "", b"", None)[0] == 200  # type: ignore[index]
    assert dash.handle("GET", api, H(authorization=f"bearer {SECRET}"), "", b"", None)[0] == 200  # type: ignore[index]
    # ?token= opens the page only, never the JSON API
    assert dash.handle("GET", api, H(), f"token={SECRET}", b"", None)[0] == 401  # type: ignore[index]
    assert dash.handle("GET", "/_pulsegate/", H(), f"token={SECRET}", b"", None)[0] == 200  # type: ignore[index]
    assert dash.handle("GET", "/_pulsegate", H(), "token=bad", b"", None)[0] == 401  # type: ignore[index]
    # a loopback peer needs the token too unless loopback access is allowed
    assert dash.handle("GET", api, H(), "", b"", "127.0.0.1")[0] == 401  # type: ignore[index]
    assert dash.handle("GET", "/_pulsegate/api/nothing", H(authorization=f"Bearer {SECRET}"),
                       "", b"", None)[0] == 404  # type: ignore[index]


def test_loopback_rules(clock: FakeClock) -> None:
    dash, _ = handler(clock, dashboard_allow_loopback=True)
    api = "/_pulsegate/api/summary"
    local = H(host="127.0.0.1:8000")
    assert dash.handle("GET", api, local, "", b"", "127.0.0.1")[0] == 200  # type: ignore[index]
    assert dash.handle("GET", api, H(host="[::1]:8000"), "", b"", "::1")[0] == 200  # type: ignore[index]
    # no token configured: to anyone else the dashboard does not exist
    assert dash.handle("GET", api, H(), "", b"", "192.0.2.7")[0] == 404  # type: ignore[index]
    assert dash.handle("GET", api, H(), "", b"", None)[0] == 404  # type: ignore[index]
    # through a proxy the peer address says nothing about the client
    assert dash.handle("GET", api, H(host="localhost", x_forwarded_for="203.0.113.9"), "", b"",
                       "127.0.0.1")[0] == 404  # type: ignore[index]
    assert dash.handle("GET", api, H(host="localhost", forwarded="for=203.0.113.9"), "", b"",
                       "127.0.0.1")[0] == 404  # type: ignore[index]
    assert is_loopback("127.8.9.10") and not is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_config_checks_paths() -> None:
    assert Config(dashboard_path="/ops/pg/").dashboard_path == "/ops/pg"
    assert Config(prometheus_path="none").prometheus_path is None
    for bad in ("ops", "/a b", "/x?y"):
        with pytest.raises(ConfigError):
            Config(dashboard_path=bad)


def test_page_security_headers_and_nonce(clock: FakeClock) -> None:
    dash, _ = handler(clock, dashboard_token=SECRET)
    status, headers, body = dash.handle("GET", "/_pulsegate/", H(authorization=f"Bearer {SECRET}"),
                                        "", b"", None)  # type: ignore[misc]
    h = dict(headers)
    assert status == 200 and h["content-type"].startswith("text/html")
    assert h["cache-control"] == "no-store" and h["referrer-policy"] == "no-referrer"
    csp = h["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    html = body.decode()
    assert f'<script nonce="{nonce}">' in html and f'<style nonce="{nonce}">' in html
    assert "{{" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # a new nonce per response
    _, headers2, _ = dash.handle("GET", "/_pulsegate/", H(authorization=f"Bearer {SECRET}"),
                                 "", b"", None)  # type: ignore[misc]
    assert dict(headers2)["content-security-policy"] != csp


async def test_summary_over_asgi(app_factory: Any) -> None:
    app, gate = app_factory(dashboard=True, dashboard_token=SECRET)
    async with client_for(app) as client:
        await traffic(client)
        r = await client.get("/_pulsegate/api/summary")
        assert r.status_code == 401
        r = await client.get("/_pulsegate/api/summary", headers=AUTH)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        d = r.json()
    assert gate.counters["requests"] == 32  # the dashboard's own calls are not measured
    assert d["stats"]["requests"] == 32
    ep = d["endpoints"][0]
    assert ep["endpoint"] == "GET /work/{item}" and ep["requests"] == 32
    pts = ep["series"]
    assert sum(p["n"] for p in pts) == 32
    assert any(p["anomalies"] for p in pts)
    band = [p for p in pts if p["low_ms"] is not None]
    assert band and all(p["low_ms"] < p["forecast_ms"] < p["high_ms"] for p in band)
    assert max(p["max_ms"] for p in pts) == pytest.approx(400, rel=1e-6)
    slow = [a for a in d["anomalies"] if a["endpoint"] == "GET /work/{item}"
            and a["duration_ms"] > 300]
    assert slow and slow[0]["duration_ms"] == pytest.approx(400, rel=1e-6)
    det = d["detections"][0]
    assert det["kind"] == "n_plus_one" and det["count"] == 8
    assert det["relationship"] == "Author.books" and det["call_site"].startswith("app/views.py:12")
    assert "?" in det["sql"] and "author_id = 1" not in det["sql"]
    assert det["suggestion"]
    names = {m["name"] for m in d["models"]}
    assert "latency-baseline" in names


async def test_series_endpoint(app_factory: Any) -> None:
    app, _ = app_factory(dashboard=True, dashboard_token=SECRET)
    async with client_for(app) as client:
        await traffic(client, 10, slow=0, n1=0)
        r = await client.get("/_pulsegate/api/series", params={"endpoint": "GET /work/{item}"},
                             headers=AUTH)
        assert r.status_code == 200
        assert sum(p["n"] for p in r.json()["points"]) == 10
        r = await client.get("/_pulsegate/api/series", params={"endpoint": "GET /nope"}, headers=AUTH)
        assert r.json()["points"] == []


async def test_feedback_round_trip_reaches_the_registry(app_factory: Any) -> None:
    app, gate = app_factory(dashboard=True, dashboard_token=SECRET)
    async with client_for(app) as client:
        await traffic(client)
        d = (await client.get("/_pulsegate/api/summary", headers=AUTH)).json()
        det_id = d["detections"][0]["id"]
        an_id = next(a["id"] for a in d["anomalies"] if a["duration_ms"] > 300)
        # the ids are the registry's prediction ids: gate.feedback knows them
        assert gate.ops.predictions.get(det_id) is not None
        r = await client.post("/_pulsegate/api/feedback", json={"id": det_id, "correct": True},
                              headers=AUTH)
        assert r.status_code == 200 and r.json()["forwarded"] is True
        r = await client.post("/_pulsegate/api/feedback", json={"id": an_id, "correct": False},
                              headers=AUTH)
        assert r.status_code == 200
        d = (await client.get("/_pulsegate/api/summary", headers=AUTH)).json()
        assert d["detections"][0]["feedback"] is True
        assert next(a for a in d["anomalies"] if a["id"] == an_id)["feedback"] is False
        assert gate.ops.predictions.get(det_id).correct is True  # type: ignore[union-attr]
        assert gate.ops.predictions.get(an_id).correct is False  # type: ignore[union-attr]
        perf = {m["name"]: m["performance"] for m in d["models"]}
        assert perf["n1-detector"]["all_time"]["n"] == 1
        assert perf["latency-baseline"]["all_time"]["n"] == 1
        # unknown ids, wrong shapes, wrong content type, cross-origin, no token
        r = await client.post("/_pulsegate/api/feedback", json={"id": "nope", "correct": True},
                              headers=AUTH)
        assert r.status_code == 404
        r = await client.post("/_pulsegate/api/feedback", json={"id": det_id, "correct": "yes"},
                              headers=AUTH)
        assert r.status_code == 400
        r = await client.post("/_pulsegate/api/feedback", data={"id": det_id, "correct": "1"},
                              headers=AUTH)
        assert r.status_code == 415
        r = await client.post("/_pulsegate/api/feedback", json={"id": det_id, "correct": True},
                              headers={**AUTH, "Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await client.post("/_pulsegate/api/feedback", json={"id": det_id, "correct": True})
        assert r.status_code == 401
        r = await client.get("/_pulsegate/api/feedback", headers=AUTH)
        assert r.status_code == 405


async def test_dashboard_off_is_the_apps_404(app_factory: Any) -> None:
    app, _ = app_factory()
    async with client_for(app) as client:
        await traffic(client, 1, slow=0, n1=0)
        r = await client.get("/_pulsegate/", params={"token": SECRET})
        assert r.status_code == 404 and "x-ml-model-version" in r.headers  # the app's 404


def test_wsgi_serving(clock: FakeClock) -> None:
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET)
    endpoints = internal_endpoints(gate)
    assert endpoints is not None
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append((status, headers))

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/_pulsegate/api/summary",
               "QUERY_STRING": "", "REMOTE_ADDR": "10.0.0.2",
               "HTTP_AUTHORIZATION": f"Bearer {SECRET}", "wsgi.input": io.BytesIO()}
    out = serve_wsgi(endpoints, environ, start_response)
    assert out is not None and seen[-1][0] == "200 OK"
    assert json.loads(out[0])["stats"]["requests"] == 0
    environ["HTTP_AUTHORIZATION"] = "Bearer wrong"
    serve_wsgi(endpoints, environ, start_response)
    assert seen[-1][0] == "401 Unauthorized"
    assert serve_wsgi(endpoints, {**environ, "PATH_INFO": "/other"}, start_response) is None
    body = json.dumps({"id": "nope", "correct": True}).encode()
    environ.update(REQUEST_METHOD="POST", PATH_INFO="/_pulsegate/api/feedback",
                   CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(body)),
                   HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    environ["wsgi.input"] = io.BytesIO(body)
    serve_wsgi(endpoints, environ, start_response)
    assert seen[-1][0] == "404 Not Found"


@pytest.mark.parametrize("body", [b"[" * 16_000, b'{"id":' * 2_000 + b'"x"' + b"}" * 2_000])
def test_a_feedback_body_nested_past_the_parsers_depth_is_a_bad_request(
        clock: FakeClock, body: bytes) -> None:
    """Attack probe (hsec6): a feedback body within MAX_BODY (16 kB) nested 16 000 deep
    raised RecursionError out of json.loads (only ValueError was caught): a 500 and an
    internal fault for the caller's body. Now the 400 any unreadable body gets."""
    dash, gate = handler(clock, dashboard_token=SECRET)
    status, _, answer = dash.handle("POST", "/_pulsegate/api/feedback",
                                    H(authorization=f"Bearer {SECRET}", host="example.com",
                                      content_type="application/json"), "", body, "10.0.0.2")
    assert (status, json.loads(answer)) == (400, {"error": "body is not JSON"})
    assert gate.faults.total == 0


def test_series_bounded(clock: FakeClock) -> None:
    """Ring buffers per endpoint, an LRU cap on endpoints, whatever the traffic."""
    import asyncio

    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, dashboard_points=5,
                     aggregation_window=1, max_endpoints=3)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    series = state(gate).series
    assert series is not None

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            for i in range(40):
                await client.get(f"/work/{i}?ms=500")  # two requests per 1 s window
    asyncio.run(run())
    pts = series.endpoint_series("GET /work/{item}")
    assert len(pts) == 5 and all(p["n"] == 2 for p in pts)
    assert [p["t"] for p in pts] == sorted(p["t"] for p in pts)
    assert len(series.control_series()) == 5


async def test_near_miss_paths_go_to_the_app_with_their_body(app_factory: Any) -> None:
    """``/_pulsegateX`` shares the prefix but is the application's: untouched, body too."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    _, gate = app_factory(dashboard=True, dashboard_token=SECRET)
    app = PulseGateMiddleware(Starlette(routes=[Route("/_pulsegateX", echo, methods=["POST"])]),
                              gate=gate)
    async with client_for(app) as client:
        r = await client.post("/_pulsegateX", content=b"payload")
        assert r.status_code == 200 and r.text == "payload"


def test_head_has_no_body_and_root_path_is_refused(clock: FakeClock) -> None:
    dash, _ = handler(clock, dashboard_token=SECRET)
    status, headers, body = dash.handle("HEAD", "/_pulsegate/api/summary",  # type: ignore[misc]
                                        H(authorization=f"Bearer {SECRET}"), "", b"", None)
    assert status == 200 and body == b"" and int(dict(headers)["content-length"]) > 0
    assert state(make_gate(clock, dashboard=True, dashboard_token=SECRET,
                           dashboard_path="/")).dashboard is None


async def test_dashboard_is_restored_after_a_restart(clock: FakeClock, tmp_path: Any) -> None:
    """A worker restarted on the same state_dir shows the counts, anomalies, incidents
    and query problems of before (it showed 0 requests and "no query problems")."""
    from pulsegate.export.dashboard.api import summary

    options = {"dashboard_token": SECRET, "state_dir": str(tmp_path)}
    before_gate = make_gate(clock, dashboard=True, **options)
    async with client_for(PulseGateMiddleware(build_app(clock), gate=before_gate)) as client:
        await traffic(client, slow=2, n1=2)
    before_gate.incidents.append({"id": "incident-1", "endpoint": "GET /work/{id}", "at": 1.0})
    series = state(before_gate).series
    assert series is not None
    before = summary(before_gate, series)
    before_gate.close()  # the final snapshot
    assert before["stats"]["requests"] == 34 and before["anomalies"] and before["detections"]

    after_gate = make_gate(clock, dashboard=True, **options)
    series = state(after_gate).series
    assert series is not None
    after = summary(after_gate, series)
    assert after["stats"]["requests"] == 34
    assert after["stats"]["anomalies"] == before["stats"]["anomalies"] > 0
    assert [a["endpoint"] for a in after["anomalies"]] == [a["endpoint"] for a in before["anomalies"]]
    assert {(d["endpoint"], d["kind"]) for d in after["detections"]} == {
        (d["endpoint"], d["kind"]) for d in before["detections"]}
    assert [i["id"] for i in after["incidents"]] == ["incident-1"]
    async with client_for(PulseGateMiddleware(build_app(clock), gate=after_gate)) as client:
        await client.get("/work/1?ms=10")
    assert summary(after_gate, series)["stats"]["requests"] == 35  # and it counts on
    after_gate.close()
