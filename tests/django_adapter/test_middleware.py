"""The Django middleware under Django's own sync (WSGI) and async (ASGI) handlers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pg_adapter_urls
import pytest
from asgiref.sync import iscoroutinefunction
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings

from pulsegate.context import Rejection, RequestContext
from pulsegate.django import PulseGateMiddleware, get_gate
from pulsegate.django.checks import check_settings
from pulsegate.django.gate import set_gate
from pulsegate.django.management.commands.pulsegate import Command
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo, RequestRecord

MW = ["pulsegate.django.PulseGateMiddleware"]


@pytest.fixture()
def records() -> Iterator[list[RequestRecord]]:
    """A fresh engine for the project, with a listener collecting records."""
    with override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=MW, DEBUG=False,
                           PULSEGATE={"warmup": 5}):
        set_gate(None)
        out: list[RequestRecord] = []
        get_gate().listeners.append(lambda record, ctx: out.append(record))
        yield out
    set_gate(None)


def client() -> Client:
    return Client(raise_request_exception=False)


def test_headers_route_template_and_include(records: list[RequestRecord]) -> None:
    r = client().get("/books/3/")
    assert r.status_code == 200 and r.json() == {"id": 3}
    assert 0 <= float(r["x-ml-anomaly-score"]) <= 1
    assert 0 <= int(r["x-ml-prediction-confidence"]) <= 100
    assert r["x-ml-optimization-applied"] == "none"
    # written straight into Django's header store: still case-insensitive, still listed
    assert r["X-ML-Model-Version"] == r["x-ml-model-version"]
    assert ("x-ml-anomaly-score", r["x-ml-anomaly-score"]) in r.items()
    client().get("/api/books/4/")
    client().get("/legacy/abc/")
    assert [x.route for x in records] == [
        "/books/<int:pk>/", "/api/books/<int:pk>/", "/legacy/(?P<slug>[a-z]+)/"]


def test_404_and_500_recorded_with_error_name(records: list[RequestRecord]) -> None:
    assert client().get("/missing/route/").status_code == 404
    r = client().get("/boom/")
    assert r.status_code == 500 and "x-ml-model-version" in r
    assert [(x.route, x.status, x.error) for x in records] == [
        ("UNMATCHED", 404, None), ("/boom/", 500, "RuntimeError")]


def test_streaming_response_finishes_when_closed(records: list[RequestRecord]) -> None:
    r = client().get("/stream/")
    assert "x-ml-model-version" in r
    assert records == []  # not yet sent
    assert b"".join(r.streaming_content) == b"chunk 0\nchunk 1\nchunk 2\n"  # type: ignore[arg-type]
    assert len(records) == 1 and records[0].route == "/stream/"


def test_async_path_has_no_thread_hop(records: list[RequestRecord]) -> None:
    async def go() -> tuple[Any, int]:
        response = await AsyncClient().get("/async/")
        return response, threading.get_ident()

    pg_adapter_urls.seen_threads.clear()
    response, loop_thread = asyncio.run(go())
    assert response.status_code == 200 and "x-ml-anomaly-score" in response
    # a sync-only middleware would force Django to run the async view in another thread
    assert pg_adapter_urls.seen_threads == [loop_thread]
    assert records[0].route == "/async/"


def test_middleware_is_sync_and_async_capable() -> None:
    async def aget(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    gate = PulseGate()
    assert PulseGateMiddleware.sync_capable and PulseGateMiddleware.async_capable
    assert iscoroutinefunction(PulseGateMiddleware(aget, gate=gate))
    assert not iscoroutinefunction(PulseGateMiddleware(lambda r: HttpResponse(), gate=gate))


def test_rejection_sync_and_async(records: list[RequestRecord]) -> None:
    gate = get_gate()
    rej = Rejection(429, "throttle", [("Retry-After", "2"), ("RateLimit", "limit=5, remaining=0")],
                    b"slow down\n")
    gate.control = object()  # the middleware asks for admission only when control exists
    gate.admit = lambda ctx: rej  # type: ignore[method-assign]

    async def admit_async(ctx: Any) -> Rejection:
        return rej

    gate.admit_async = admit_async  # type: ignore[method-assign]
    r = client().get("/books/1/")
    assert r.status_code == 429 and r.content == b"slow down\n"
    assert r["Retry-After"] == "2" and r["RateLimit"].startswith("limit=5")
    assert r["x-ml-optimization-applied"] == "none"

    async def go() -> Any:
        return await AsyncClient().get("/async/")

    pg_adapter_urls.seen_threads.clear()
    ra = asyncio.run(go())
    assert ra.status_code == 429 and pg_adapter_urls.seen_threads == []  # view not called
    assert [(x.route, x.status) for x in records] == [("/books/<int:pk>/", 429), ("/async/", 429)]


def test_excluded_path_untouched(records: list[RequestRecord]) -> None:
    with override_settings(PULSEGATE={"exclude_paths": ["/health"]}):
        r = client().get("/health/")
        assert r.status_code == 200
        assert not any(k.lower().startswith("x-ml-") for k in r.headers)
        assert get_gate().counters["excluded"] == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "BREW"])
def test_byte_identical_to_bare_django_except_added_headers(
        records: list[RequestRecord], method: str) -> None:
    kwargs = {"data": b"z" * 50_000, "content_type": "application/octet-stream",
              "HTTP_X_LONG": "q" * 16_000, "HTTP_X_WEIRD": "\x7f\tvalue"}
    gated = client().generic(method, "/echo/", **kwargs)
    with override_settings(MIDDLEWARE=[]):
        bare = client().generic(method, "/echo/", **kwargs)
    assert gated.status_code == bare.status_code
    assert gated.content == bare.content
    assert [(k, v) for k, v in gated.items() if not k.lower().startswith("x-ml-")] == list(
        bare.items())
    assert records[-1].method == (method if method != "BREW" else "OTHER")


def test_system_check_reports_bad_settings() -> None:
    with override_settings(PULSEGATE={"z_threshold": -1}):
        (err,) = check_settings()
        assert err.id == "pulsegate.E001" and "z_threshold" in err.msg
    with override_settings(PULSEGATE={"no_such_option": 1}):
        assert check_settings()[0].id == "pulsegate.E001"
    with override_settings(PULSEGATE=["not", "a", "dict"]):
        assert check_settings()[0].id == "pulsegate.E002"
    with override_settings(PULSEGATE={"alpha": 0.2}):
        assert check_settings() == []
        assert get_gate().config.alpha == 0.2  # setting_changed rebuilt the engine
    set_gate(None)


def test_management_command_stats_and_report(records: list[RequestRecord]) -> None:
    for _ in range(3):
        client().get("/books/1/")
    client().get("/boom/")
    out = StringIO()
    call_command(Command(), "stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    assert stats["requests"] == 4 and stats["errors"] == 1
    out = StringIO()
    call_command(Command(), "report", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert {e["endpoint"]: e["requests"] for e in report["endpoints"]} == {
        "GET /books/<int:pk>/": 3, "GET /boom/": 1}
    out = StringIO()
    call_command(Command(), "report", stdout=out)
    assert "GET /books/<int:pk>/" in out.getvalue() and "Query detections" in out.getvalue()


def test_app_importable_before_settings_are_ready() -> None:
    code = ("import pulsegate.django, pulsegate.django.apps as a; "
            "assert a.PulseGateConfig.name == 'pulsegate.django'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_bad_settings_fail_at_middleware_load() -> None:
    from pulsegate import ConfigError

    with override_settings(PULSEGATE={"alpha": 7}):
        with pytest.raises(ConfigError) as err:
            PulseGateMiddleware(lambda r: HttpResponse())
        assert err.value.key == "alpha"
    set_gate(None)


def test_every_header_pulsegate_sends_is_safe_by_construction(
        records: list[RequestRecord]) -> None:
    """The middleware writes pulsegate's pairs straight into Django's header store, so
    no source of a pair may yield an unsafe one: a stored model version is sanitised,
    add_header refuses CR/LF, and what reaches the response is plain ASCII."""
    gate = get_gate()
    gate.model_version = "9\r\nSet-Cookie: a=b"
    r = client().get("/books/5/")
    assert r.status_code == 200 and "Set-Cookie" not in r
    assert r["x-ml-model-version"] == "9??Set-Cookie: a=b"
    for name, value in r.items():
        if name.startswith("x-ml-"):
            assert name.islower() and value.isascii() and value.isprintable()
    ctx = RequestContext(RequestInfo("GET", "/"), 0.0, None, None, 1)
    with pytest.raises(ValueError):
        ctx.add_header("x-evil", "1\r\nSet-Cookie: a=b")


def test_report_of_a_fresh_process_explains_where_state_comes_from() -> None:
    set_gate(None)  # a fresh `manage.py` process: an engine that has seen nothing
    out = StringIO()
    call_command(Command(), "report", stdout=out)
    text = out.getvalue()
    assert "state_dir" in text and "Nothing recorded yet" in text
    assert "(none)" not in text and " at ?" not in text
    set_gate(None)


@pytest.mark.pulsegate(nplusone="off")  # the N+1 is this test's subject
def test_report_prints_a_real_n_plus_one_with_integer_counts() -> None:
    """A view that loads 16 authors' books one query at a time: ``manage.py pulsegate
    report`` names the repeated statement, its count as an integer (x16, not x16.0) and
    the fix."""
    with override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=MW):
        set_gate(None)
        for _ in range(3):
            assert client().get("/authors/").json() == {"authors": 16}
        out = StringIO()
        call_command(Command(), "report", stdout=out)
    set_gate(None)
    text = out.getvalue()
    line = next(x for x in text.splitlines() if "pg_book" in x)
    assert line.split()[0] == "n_plus_one", text
    assert " x16 " in line and "x16.0" not in text and "GET /authors/" in line, text
    assert "\n    fix: " in text[text.index(line):], text


def test_set_endpoint_splits_a_catch_all_route_by_page_type(records: list[RequestRecord]) -> None:
    for path in ("/site/breads/rye/", "/site/blog/post-1/", "/site/breads/spelt/", "/site/"):
        assert client().get(path).status_code == 200
    assert [x.route for x in records] == ["/cms/breads", "/cms/blog", "/cms/breads", "/cms/home"]
    assert {e["endpoint"] for e in get_gate().endpoints()} >= {"GET /cms/breads", "GET /cms/blog"}


def test_management_commands_read_the_running_servers_state_store(tmp_path: Any) -> None:
    """Beside a running server (here: an engine writing the same state_dir), `manage.py
    pulsegate stats|report` print what the server has seen, not the empty engine of the
    manage.py process (requests 0 before)."""
    from pulsegate.django import gate as gate_module

    server = PulseGate(state_dir=str(tmp_path))
    for i in range(7):
        ctx = server.begin(RequestInfo("GET", f"/books/{i}/", route="/books/<int:pk>/"))
        assert ctx is not None
        server.response_headers(ctx, 200)
        server.finish(ctx)
    server.ops.snapshot()
    with override_settings(PULSEGATE={"state_dir": str(tmp_path)}):
        set_gate(None)
        out = StringIO()
        call_command(Command(), "stats", "--json", stdout=out)
        assert json.loads(out.getvalue())["totals"]["requests"] == 7
        out = StringIO()
        call_command(Command(), "report", "--json", stdout=out)
        (row,) = json.loads(out.getvalue())["endpoints"]
        assert row["endpoint"] == "GET /books/<int:pk>/" and row["requests"] == 7
        out = StringIO()
        call_command(Command(), "report", stdout=out)
        assert "GET /books/<int:pk>/" in out.getvalue()
        assert gate_module._gate is None  # no engine (and no empty worker) was made
    server.close()
    set_gate(None)
