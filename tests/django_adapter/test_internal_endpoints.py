"""pulsegate's own endpoints (the dashboard, the Prometheus metrics) served by the Django
middleware, under Django's sync (WSGI) and async (ASGI) handlers: answered before
``gate.begin``, so never measured, and the view never runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pg_adapter_urls
import pytest
from django.test import AsyncClient, Client, override_settings

from pulsegate.django import get_gate
from pulsegate.django.gate import set_gate
from pulsegate.engine import PulseGate

MW = ["pulsegate.django.PulseGateMiddleware"]
AUTH = {"headers": {"Authorization": "Bearer t"}}
#: One GET/POST helper per Django handler: the sync test client, the async one.
Get = Callable[..., Any]


@pytest.fixture()
def configure() -> Iterator[Callable[..., PulseGate]]:
    """``configure(**options)``: a fresh project engine built from ``PULSEGATE``."""
    stack: list[Any] = []

    def make(**options: Any) -> PulseGate:
        settings = override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=MW,
                                     DEBUG=False, PULSEGATE={"warmup": 5, **options})
        settings.enable()
        stack.append(settings)
        set_gate(None)
        return get_gate()

    yield make
    for settings in reversed(stack):
        settings.disable()
    set_gate(None)


def sync_call(method: str, path: str, **kwargs: Any) -> Any:
    return getattr(Client(raise_request_exception=False), method)(path, **kwargs)


def async_call(method: str, path: str, **kwargs: Any) -> Any:
    async def go() -> Any:
        return await getattr(AsyncClient(raise_request_exception=False), method)(path, **kwargs)

    return asyncio.run(go())


HANDLERS = pytest.mark.parametrize("call", [sync_call, async_call], ids=["sync", "async"])


@HANDLERS
def test_dashboard_page_api_and_token(configure: Callable[..., PulseGate], call: Get) -> None:
    gate = configure(dashboard=True, dashboard_token="t")
    r = call("get", "/_pulsegate/")
    assert r.status_code == 401 and r["www-authenticate"].startswith("Bearer")
    assert r["content-type"].startswith("text/html")
    r = call("get", "/_pulsegate/", **AUTH)
    assert r.status_code == 200 and r["content-type"] == "text/html; charset=utf-8"
    assert b"<html" in r.content and "content-security-policy" in r
    assert not any(k.lower().startswith("x-ml-") for k in r.headers)
    assert call("get", "/books/2/").status_code == 200  # the app's: measured
    r = call("get", "/_pulsegate/api/summary", **AUTH)
    assert r.status_code == 200 and r["content-type"] == "application/json"
    assert json.loads(r.content)["stats"]["requests"] == 1
    assert call("get", "/_pulsegate/api/summary").status_code == 401
    # the POST body reaches the handler: a well-formed feedback for an unknown detection
    r = call("post", "/_pulsegate/api/feedback", data=b'{"id": "nope", "correct": true}',
             content_type="application/json", **AUTH)
    assert r.status_code == 404 and "error" in json.loads(r.content)
    r = call("post", "/_pulsegate/api/feedback", data=b"x" * 20_000,
             content_type="application/json", **AUTH)
    assert r.status_code == 413
    assert gate.stats()["requests"] == 1


@HANDLERS
def test_dashboard_off_is_an_ordinary_request(configure: Callable[..., PulseGate],
                                              call: Get) -> None:
    gate = configure()
    r = call("get", "/_pulsegate/", **AUTH)
    assert r.status_code == 404 and "x-ml-model-version" in r  # Django's own 404
    assert gate.stats()["requests"] == 1


@HANDLERS
def test_metrics_path(configure: Callable[..., PulseGate], call: Get) -> None:
    gate = configure(prometheus=True)
    assert call("get", "/books/2/").status_code == 200
    r = call("get", "/_pulsegate/metrics")
    assert r.status_code == 200 and r["content-type"].startswith("text/plain")
    assert b"pulsegate_" in r.content and "x-ml-model-version" not in r
    assert call("post", "/_pulsegate/metrics").status_code == 405
    # the dashboard is off: its path is the application's
    assert call("get", "/_pulsegate/").status_code == 404
    assert gate.stats()["requests"] == 2


def test_async_view_not_reached(configure: Callable[..., PulseGate]) -> None:
    """The async path answers in the middleware: no view, no thread hop to one."""
    configure(dashboard=True, dashboard_token="t")
    pg_adapter_urls.seen_threads.clear()
    assert async_call("get", "/_pulsegate/", **AUTH).status_code == 200
    assert pg_adapter_urls.seen_threads == []
