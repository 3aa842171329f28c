"""Read-after-write through Django with the shared (Redis) store: a client that reads
right after its write's response reached it is served the new page, never one cached
before the write finished -- under WSGI (the server writes the body *before* it closes
the response, so a finish at ``close()`` is too late) and under ASGI (the last chunk is
sent before Django's handler closes the response).

Each write's view first lets a concurrent reader through, which caches the page as it
is before the write (only the write's *finishing* invalidation drops that entry); the
client's read is made as soon as the write's body is out and before the server closes
the response -- what a fast client on a real server sees."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import cache_django_redis_urls as urls
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings

from fakeclock import FakeClock
from pulsegate.django.gate import set_gate
from pulsegate.engine import PulseGate

ROUNDS = 40
Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture()
def django_redis_gate(redis_service: Any) -> Iterator[PulseGate]:
    urls.clock = clock = FakeClock(100.0)
    urls.items.clear()
    urls.items["1"] = "v0"
    gate = PulseGate(clock=clock, response_cache=True, response_cache_min_saving_ms=0.0,
                     response_cache_routes=["/items/<str:pk>/", "/aitems/<str:pk>/"],
                     response_cache_storage=redis_service.url,
                     response_cache_key_prefix="d" + uuid.uuid4().hex[:12])
    with override_settings(ROOT_URLCONF="cache_django_redis_urls",
                           MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"]):
        set_gate(gate)
        yield gate
    set_gate(None)
    urls.clock, urls.reader, urls.areader = None, None, None


def cached(headers: dict[str, str]) -> bool:
    return headers.get("x-ml-optimization-applied") == "cache"


# --- WSGI ---------------------------------------------------------------------------------

def wsgi_call(app: WSGIHandler, method: str, path: str, body: bytes = b"",
              before_close: Callable[[], object] | None = None) -> Answer:
    """A server's turn: call, write the whole body out, then (``before_close``: the
    client has it and reads again) close the response."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "t", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "text/plain"}
    started: list[Any] = []
    result = app(environ, lambda status, headers, *exc: started.append((status, headers)))
    data = b"".join(result)
    if before_close is not None:
        before_close()
    result.close()
    status, headers = started[-1]
    return int(status[:3]), {k.lower(): v for k, v in headers}, data


def test_django_wsgi_a_read_right_after_a_write_gets_the_new_page(
        django_redis_gate: PulseGate) -> None:
    app = WSGIHandler()

    def concurrent_reader(pk: str) -> None:  # another client, while the write runs
        thread = threading.Thread(target=wsgi_call, args=(app, "GET", f"/items/{pk}/"))
        thread.start()
        thread.join()

    urls.reader = concurrent_reader
    stale = 0
    after: list[Answer] = []  # the reads right after each write
    for n in range(1, ROUNDS + 1):
        for _ in range(40):  # the page is served from the cache before the write
            urls.clock.t += 0.1
            if cached(wsgi_call(app, "GET", "/items/1/")[1]):
                break
        else:
            raise AssertionError("the page was never cached")
        status, _, body = wsgi_call(app, "PUT", "/items/1/", f"v{n}".encode(),
                                    lambda: after.append(wsgi_call(app, "GET", "/items/1/")))
        assert (status, body) == (200, b"ok")
        assert len(after) == n
        stale += after[-1][2] != f"item v{n}".encode()
    assert stale == 0, f"{stale}/{ROUNDS} reads right after a write got the old page"


# --- ASGI ---------------------------------------------------------------------------------

async def asgi_call(app: ASGIHandler, method: str, path: str, body: bytes = b"",
                    on_last: Callable[[], Any] | None = None) -> Answer:
    """A server's turn; ``on_last``: awaited as the last body chunk goes out (the
    client has the response and reads again), before the handler goes on."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("t", 80), "headers": [(b"host", b"t"),
                                             (b"content-length", str(len(body)).encode())]}
    given = False
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # (no disconnect)
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {bytes(k).decode().lower(): bytes(v).decode()
                              for k, v in message.get("headers", ())}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")
            if not message.get("more_body", False) and on_last is not None:
                await on_last()

    await app(scope, receive, send)
    return out["status"], out["headers"], out["body"]


async def test_django_asgi_a_read_right_after_a_write_gets_the_new_page(
        django_redis_gate: PulseGate) -> None:
    app = ASGIHandler()

    async def concurrent_reader(pk: str) -> None:
        await asyncio.create_task(asgi_call(app, "GET", f"/aitems/{pk}/"))

    async def read_again() -> None:
        after.append(await asyncio.create_task(asgi_call(app, "GET", "/aitems/1/")))

    urls.areader = concurrent_reader
    stale = 0
    after: list[Answer] = []  # the reads right after each write
    for n in range(1, ROUNDS + 1):
        for _ in range(40):
            urls.clock.t += 0.1
            if cached((await asgi_call(app, "GET", "/aitems/1/"))[1]):
                break
        else:
            raise AssertionError("the page was never cached")
        status, _, body = await asgi_call(app, "PUT", "/aitems/1/", f"v{n}".encode(),
                                          read_again)
        assert (status, body) == (200, b"ok")
        assert len(after) == n
        stale += after[-1][2] != f"item v{n}".encode()
    assert stale == 0, f"{stale}/{ROUNDS} reads right after a write got the old page"
