"""The learned response cache through the WSGI middleware (Flask, and a plain WSGI app
streaming its body) and the Django middleware (sync and async handlers): the same
promises as under ASGI -- served once learnt, never across users, never after a write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cache_django_urls as urls
import pytest
from cache_shop import CLIENT_DEFAULTS, FakeClock
from credential_names import generated
from django.test import AsyncClient, Client, override_settings
from flask import Flask, request

from pulsegate.django.gate import set_gate
from pulsegate.engine import PulseGate
from pulsegate.flask import PulseGate as FlaskPulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware

OPTIONS: dict[str, Any] = {"response_cache": True, "response_cache_min_saving_ms": 0.0}


def cached(headers: Any) -> bool:
    return headers.get("x-ml-optimization-applied") == "cache"


# --- Flask (WSGI) -----------------------------------------------------------------------

def flask_shop(**options: Any) -> tuple[Flask, FakeClock, dict[str, int], dict[str, str]]:
    clock = FakeClock()
    items = {"1": "apple"}
    calls = {"item": 0, "me": 0}
    app = Flask(__name__)

    @app.get("/items/<pk>")
    def item(pk: str) -> str:
        calls["item"] += 1
        clock.t += 0.005
        return f"item {items.get(pk, '?')}"

    @app.put("/items/<pk>")
    def put_item(pk: str) -> str:
        items[pk] = request.get_data(as_text=True)
        return "ok"

    @app.get("/me")
    def me() -> str:
        calls["me"] += 1
        clock.t += 0.005
        who = request.headers.get("authorization") or request.cookies.get("s") \
            or request.environ.get("REMOTE_USER") \
            or ",".join(v for k, v in request.headers.items() if k.lower() not in CLIENT_DEFAULTS)
        return f"hello {who}"

    gate = PulseGate(clock=clock, response_cache_routes=["/items/<pk>", "/me"],
                     **{**OPTIONS, **options})
    FlaskPulseGate(app, gate=gate)
    return app, clock, calls, items


def test_flask_serves_a_learnt_route_and_never_after_a_write() -> None:
    app, clock, calls, items = flask_shop()
    client = app.test_client()
    for _ in range(12):
        clock.t += 0.1
        r = client.get("/items/1")
        assert r.text == "item apple"
    produced = calls["item"]
    for _ in range(10):
        r = client.get("/items/1")
        assert cached(r.headers) and r.text == "item apple" and r.content_type.startswith(
            "text/html")
    assert calls["item"] == produced
    assert client.put("/items/1", data="banana").text == "ok"
    r = client.get("/items/1")
    assert not cached(r.headers) and r.text == "item banana"


def test_flask_and_django_answer_a_head_from_the_gets_entry(django_gate: PulseGate) -> None:
    app, clock, calls, _ = flask_shop()
    client = app.test_client()
    for _ in range(12):
        clock.t += 0.1
        client.get("/items/1")
    produced = calls["item"]
    r = client.head("/items/1")
    assert cached(r.headers) and r.data == b"" and r.headers["content-length"] == "10"
    assert calls["item"] == produced
    django = Client()
    for _ in range(12):
        urls.clock.t += 0.1
        django.get("/items/1/")
    produced = urls.calls["item"]
    r = django.head("/items/1/")
    assert cached(r) and r.content == b"" and r["content-length"] == "10"
    assert urls.calls["item"] == produced


def test_flask_never_serves_across_users() -> None:
    app, clock, calls, _ = flask_shop(response_cache_vary=["authorization"])
    client = app.test_client()
    for _ in range(15):
        for user in ("alice", "bob"):
            clock.t += 0.1
            assert client.get("/me", headers={"authorization": user}).text == f"hello {user}"
    hits = 0
    for user in ("alice", "bob") * 5:
        r = client.get("/me", headers={"authorization": user})
        assert r.text == f"hello {user}"
        hits += cached(r.headers)
    assert hits >= 9  # (one in 20 is an audit, answered by the app)
    client.set_cookie("s", "carol")  # a cookie, not named in vary: never cached
    for _ in range(15):
        r = client.get("/me")
        assert not cached(r.headers) and r.text == "hello carol"


def test_flask_never_caches_a_credential_like_header_nor_a_server_authenticated_user() -> None:
    app, clock, calls, _ = flask_shop()
    client = app.test_client()
    for name in generated(20, seed=11):
        if "_" in name:  # (WSGI has no way to tell '_' from '-': servers drop such names)
            continue
        for user in ["alice"] * 14 + ["bob"] * 3:  # alice learnt, then bob: his own page
            clock.t += 0.1
            r = client.get("/me", headers={name: user})
            assert not cached(r.headers) and r.text == f"hello {user}"
    for user in ["alice"] * 14 + ["bob"] * 3:  # the server authenticated the client
        clock.t += 0.1
        r = client.get("/me", environ_overrides={"REMOTE_USER": user})
        assert not cached(r.headers) and r.text == f"hello {user}"
    refused = app.extensions["pulsegate"].stats()["response_cache"]["refused"]
    assert refused["request cgi:remote_user"] == 17 and calls["me"] == 17 + sum(
        n for k, n in refused.items() if k != "request cgi:remote_user")


def test_a_streamed_wsgi_body_past_max_body_is_passed_whole_and_never_cached() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield from (b"x" * 100 for _ in range(50))

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    gate = PulseGate(response_cache_routes=["/big"], response_cache_max_body=1000, **OPTIONS)
    wrapped = PulseGateWSGIMiddleware(app, gate=gate)
    started: list[Any] = []
    for _ in range(15):
        body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/big"},
                       lambda status, headers, *exc: started.append(headers))
        assert b"".join(body) == b"x" * 5000
        body.close()  # type: ignore[attr-defined]
        assert not cached(dict(started[-1]))
    assert closed == [True] * 15
    stats = gate.stats()["response_cache"]
    assert stats["refused"] == {"response size": 15} and stats["entries"] == 0


# --- Django -----------------------------------------------------------------------------

@pytest.fixture()
def django_gate() -> Iterator[PulseGate]:
    urls.clock = clock = FakeClock()
    urls.items.clear()
    urls.items["1"] = "apple"
    urls.calls.clear()
    gate = PulseGate(clock=clock, response_cache_routes=["/items/<str:pk>/", "/aitems*",
                                                         "/me/", "/cookie/"],
                     response_cache_vary=["authorization"], **OPTIONS)
    with override_settings(ROOT_URLCONF="cache_django_urls",
                           MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"]):
        set_gate(gate)
        yield gate
    set_gate(None)
    urls.clock = None


def test_django_serves_a_learnt_route_and_never_after_a_write(django_gate: PulseGate) -> None:
    client = Client()
    for _ in range(12):
        urls.clock.t += 0.1
        assert client.get("/items/1/").content == b"item apple"
    produced = urls.calls["item"]
    for _ in range(10):
        r = client.get("/items/1/")
        assert cached(r) and r.content == b"item apple" and r["content-type"] == "text/plain"
    assert urls.calls["item"] == produced
    assert client.put("/items/1/", data="fig").content == b"ok"
    r = client.get("/items/1/")
    assert not cached(r) and r.content == b"item fig"


def test_django_never_serves_across_users_nor_a_response_setting_a_cookie(
        django_gate: PulseGate) -> None:
    client = Client()
    for _ in range(15):
        for user in ("alice", "bob"):
            urls.clock.t += 0.1
            client.get("/me/", HTTP_AUTHORIZATION=user)
    hits = 0
    for user in ("alice", "bob") * 5:
        r = client.get("/me/", HTTP_AUTHORIZATION=user)
        assert r.content == f"hello {user}".encode()
        hits += cached(r)
    assert hits >= 9  # (one in 20 is an audit, answered by the app)
    r = client.get("/me/", HTTP_AUTHORIZATION="mallory")
    assert not cached(r) and r.content == b"hello mallory"
    for _ in range(15):  # (a new client each time: the cookie set would come back)
        assert not cached(Client().get("/cookie/"))
    assert django_gate.stats()["response_cache"]["refused"]["response set-cookie"] == 15


def test_django_never_caches_a_credential_like_header_nor_a_remote_user(
        django_gate: PulseGate) -> None:
    client = Client()
    for user in ["alice"] * 14 + ["bob"] * 2:  # alice learnt, then bob: his own page
        urls.clock.t += 0.1
        r = client.get("/me/", HTTP_X_SESSION_TOKEN=user)
        assert not cached(r) and r.content == f"hello {user}".encode()
        r = client.get("/me/", REMOTE_USER=user)
        assert not cached(r) and r.content == f"hello {user}".encode()
    refused = django_gate.stats()["response_cache"]["refused"]
    assert refused["request x-session-token"] == refused["request cgi:remote_user"] == 16


async def test_django_async_handler_serves_and_invalidates(django_gate: PulseGate) -> None:
    client = AsyncClient()
    for _ in range(12):
        urls.clock.t += 0.1
        assert (await client.get("/aitems/1/")).content == b"item apple"
    r = await client.get("/aitems/1/")
    assert cached(r) and r.content == b"item apple"
    await client.put("/items/1/", data="kiwi")
    r = await client.get("/aitems/1/")
    assert not cached(r) and r.content == b"item kiwi"
