"""Unit tests of the generic WSGI middleware, driven without a server (PEP 3333 by hand)
and through wsgiref for the file_wrapper / Content-Length behaviour of a real server."""

from __future__ import annotations

import io
import sys
import threading
import wsgiref.simple_server
import wsgiref.util
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from werkzeug.test import Client, create_environ

from fakeclock import FakeClock
from pulsegate import Config
from pulsegate.context import Rejection, current
from pulsegate.engine import PulseGate
from pulsegate.records import RequestRecord
from pulsegate.wsgi import PulseGateWSGIMiddleware


def make_gate(**options: Any) -> tuple[PulseGate, FakeClock, list[RequestRecord]]:
    clock = FakeClock(100.0)
    gate = PulseGate(Config(**options), clock=clock)
    records: list[RequestRecord] = []
    gate.listeners.append(lambda record, ctx: records.append(record))
    return gate, clock, records


class Recorder:
    """A start_response that remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []
        self.written: list[bytes] = []
        #: len() of the result as the server got it (a list), before iterating it
        self.length: int | None = None

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.calls.append((status, list(headers), exc_info))
        return self.written.append

    @property
    def headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.calls[-1][1]}


def run(app: Any, **env: Any) -> tuple[Recorder, bytes, Iterable[bytes]]:
    rec = Recorder()
    environ = create_environ(**env)
    result = app(environ, rec)
    rec.length = len(result) if isinstance(result, list) else None
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return rec, body, result


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")])
    return [b"hello"]


def test_headers_added_and_app_response_unchanged() -> None:
    gate, _, records = make_gate()
    bare_rec, bare_body, _ = run(hello, path="/hi")
    rec, body, result = run(PulseGateWSGIMiddleware(hello, gate=gate), path="/hi")
    assert body == bare_body == b"hello"
    assert rec.calls[0][0] == bare_rec.calls[0][0]
    # the app's own headers first, unchanged and in order; ours appended
    assert rec.calls[0][1][:2] == bare_rec.calls[0][1]
    h = rec.headers
    assert 0 <= float(h["x-ml-anomaly-score"]) <= 1
    assert 0 <= int(h["x-ml-prediction-confidence"]) <= 100
    assert h["x-ml-optimization-applied"] == "none"
    assert h["x-ml-model-version"]
    assert all(k.startswith("x-ml-") for k, _ in rec.calls[0][1][2:])
    assert len(records) == 1 and records[0].status == 200 and records[0].path == "/hi"
    assert rec.length == 1  # a list keeps its len() (wsgiref's Content-Length)
    assert type(result) is list  # the app's own list, as it made it


def test_route_resolver_and_set_route() -> None:
    gate, _, records = make_gate()
    mw = PulseGateWSGIMiddleware(hello, gate=gate, route_resolver=lambda env: "/h/<name>")
    run(mw, path="/h/x")

    def routed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ctx = current()
        assert ctx is not None
        ctx.set_route("/from/app")
        return hello(environ, start_response)

    run(PulseGateWSGIMiddleware(routed, gate=gate, route_resolver=lambda env: "/never"),
        path="/x")
    run(PulseGateWSGIMiddleware(hello, gate=gate), path="/unrouted/123")
    assert [r.route for r in records] == ["/h/<name>", "/from/app", "UNMATCHED"]


def test_full_duration_ends_when_iterable_is_closed() -> None:
    gate, clock, records = make_gate()
    closed: list[bool] = []

    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        clock.t += 0.010  # 10 ms before the headers
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for i in range(3):
                clock.t += 0.100  # each chunk takes 100 ms
                yield b"chunk%d" % i
        finally:
            closed.append(True)

    _, body, _ = run(PulseGateWSGIMiddleware(streaming, gate=gate))
    assert body == b"chunk0chunk1chunk2"
    assert closed == [True]
    (r,) = records
    # headers were started lazily on the first next(): after 10 ms
    assert r.ttfb_ms == pytest.approx(10.0, abs=0.01)
    assert r.duration_ms == pytest.approx(310.0, abs=0.01)


@pytest.mark.parametrize("kind", [list, tuple])
def test_a_complete_body_finishes_the_request_as_the_app_returns_it(kind: type) -> None:
    # A list or tuple is the whole body: the request ends as the app returns it, and the
    # server gets the app's own object (no wrapper, nothing to close).
    gate, clock, records = make_gate()
    body = kind([b"a", b"b"])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        clock.t += 0.020
        start_response("200 OK", [("Content-Length", "2")])
        return body

    result = PulseGateWSGIMiddleware(app, gate=gate)(create_environ(), Recorder())
    assert result is body
    (r,) = records  # finished before the server read a byte
    assert r.status == 200 and r.duration_ms == pytest.approx(20.0, abs=0.01)
    clock.t += 1.0  # the server's writing is not the request's time
    assert b"".join(result) == b"ab" and len(records) == 1 and gate.stats()["requests"] == 1


def test_client_disconnect_mid_response_finishes_and_closes_app_iterable() -> None:
    gate, _, records = make_gate()
    state: list[str] = []

    def endless(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"x" * 10
        finally:
            state.append("closed")

    result = PulseGateWSGIMiddleware(endless, gate=gate)(create_environ(), Recorder())
    it = iter(result)
    next(it)
    next(it)
    assert records == []  # still streaming
    result.close()  # type: ignore[attr-defined]  # what a server does when the peer leaves
    assert state == ["closed"]
    assert len(records) == 1 and records[0].status == 200 and records[0].error is None


def test_exception_before_start_response_is_recorded_and_reraised() -> None:
    gate, _, records = make_gate()

    def boom(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        PulseGateWSGIMiddleware(boom, gate=gate)(create_environ(), Recorder())
    (r,) = records
    assert r.status == 500 and r.error == "KeyError"
    assert current() is None  # the context var was reset


def test_exception_while_iterating_is_recorded_and_reraised() -> None:
    gate, _, records = make_gate()

    def broken(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise RuntimeError("mid-body")

    result = PulseGateWSGIMiddleware(broken, gate=gate)(create_environ(), Recorder())
    with pytest.raises(RuntimeError):
        list(result)
    result.close()  # type: ignore[attr-defined]
    (r,) = records
    assert r.status == 500 and r.error == "RuntimeError"


def test_exc_info_second_start_response_updates_status_without_duplicates() -> None:
    gate, _, records = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"error page"]

    rec, body, _ = run(PulseGateWSGIMiddleware(app, gate=gate))
    assert body == b"error page"
    assert len(rec.calls) == 2
    assert rec.calls[1][2] is not None and rec.calls[1][2][0] is ValueError
    names = [k for k, _ in rec.calls[1][1]]
    assert names.count("x-ml-model-version") == 1
    assert names.count("x-ml-model-version") == [k for k, _ in rec.calls[0][1]].count(
        "x-ml-model-version")
    assert records[0].status == 500


def test_excluded_path_returns_the_apps_own_iterable() -> None:
    gate, _, records = make_gate(exclude_paths=["/health"])
    sentinel = [b"ok"]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("A", "b")])
        return sentinel

    rec = Recorder()
    out = PulseGateWSGIMiddleware(app, gate=gate)(create_environ(path="/health/deep"), rec)
    assert out is sentinel
    assert rec.calls == [("200 OK", [("A", "b")], None)]
    assert records == [] and gate.counters["excluded"] == 1


def test_disabled_gate_is_pass_through() -> None:
    gate, _, records = make_gate(enabled=False)
    rec = Recorder()
    out = PulseGateWSGIMiddleware(hello, gate=gate)(create_environ(), rec)
    assert out == [b"hello"] and isinstance(out, list)
    assert rec.calls == [("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")], None)]
    assert records == []


def test_rejection_is_sent_instead_of_calling_the_app() -> None:
    gate, _, records = make_gate()
    called: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(True)
        return hello(environ, start_response)

    gate.control = object()  # the middleware asks for admission only when control exists
    gate.admit = lambda ctx: Rejection(  # type: ignore[method-assign]
        429, "throttle", [("retry-after", "3"), ("ratelimit", "limit=10, remaining=0")],
        b"rate limited\n")
    rec, body, _ = run(PulseGateWSGIMiddleware(app, gate=gate))
    assert called == []
    assert rec.calls[0][0] == "429 Too Many Requests"
    h = rec.headers
    assert h["retry-after"] == "3" and h["ratelimit"].startswith("limit=10")
    assert h["content-length"] == str(len(b"rate limited\n"))
    assert h["content-type"].startswith("text/plain")
    assert "x-ml-model-version" in h
    assert body == b"rate limited\n"
    assert records[0].status == 429


def test_odd_inputs_do_not_change_the_response() -> None:
    gate, _, records = make_gate()

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(size)
        start_response("200 OK", [("X-Method", environ["REQUEST_METHOD"])])
        return [data, environ.get("HTTP_X_HUGE", "")[:5].encode()]

    mw = PulseGateWSGIMiddleware(echo, gate=gate)
    for method in ("BREW", "HEAD", "OPTIONS", "get", "M-SEARCH"):
        env: dict[str, Any] = {"method": method, "data": b"payload",
                               "headers": {"X-Huge": "v" * 65536, "X-Bad\x00": "\xff\x00"}}
        bare_rec, bare_body, _ = run(echo, **env)
        rec, body, _ = run(mw, **env)
        assert body == bare_body
        assert rec.calls[0][1][: len(bare_rec.calls[0][1])] == bare_rec.calls[0][1]
    assert [r.method for r in records] == ["OTHER", "HEAD", "OPTIONS", "OTHER", "OTHER"]
    assert gate.faults.total == 0


def test_malformed_status_line_is_passed_through_and_counted_as_error() -> None:
    gate, _, records = make_gate()

    def bad(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("garbage", [])
        return [b""]

    rec, _, _ = run(PulseGateWSGIMiddleware(bad, gate=gate))
    assert rec.calls[0][0] == "garbage"
    assert records[0].status == 500


def test_internal_fault_fails_open() -> None:
    gate, _, _ = make_gate()

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("model exploded")

    gate.baselines = Broken()  # type: ignore[assignment]
    rec, body, _ = run(PulseGateWSGIMiddleware(hello, gate=gate))
    assert body == b"hello" and rec.calls[0][0] == "200 OK"
    assert gate.faults.total >= 1


def test_write_callable_is_passed_through() -> None:
    gate, _, _ = make_gate()

    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"written ")
        return [b"returned"]

    rec, body, _ = run(PulseGateWSGIMiddleware(legacy, gate=gate))
    assert rec.written == [b"written "] and body == b"returned"


def test_file_wrapper_object_passes_through_and_close_finishes() -> None:
    gate, _, records = make_gate()

    def sendfile(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 100), 64)

    environ = create_environ()
    environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    result = PulseGateWSGIMiddleware(sendfile, gate=gate)(environ, Recorder())
    assert isinstance(result, wsgiref.util.FileWrapper)  # the server's fast path stays
    assert b"".join(result) == b"0123456789" * 100
    assert records == []
    result.close()
    assert len(records) == 1 and records[0].status == 200


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.e2e
def test_under_wsgiref_content_length_and_bodies_are_byte_identical() -> None:
    """A real server: wsgiref derives Content-Length from a one-item list, and must
    still do so through the middleware."""
    gate, _, records = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (b"part%d;" % i for i in range(5))
        return hello(environ, start_response)

    responses = {}
    for name, wsgi in (("bare", app), ("gated", PulseGateWSGIMiddleware(app, gate=gate))):
        server = wsgiref.simple_server.make_server("127.0.0.1", 0, wsgi, handler_class=_Quiet)
        port = server.server_port
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                responses[name] = [client.get("/"), client.get("/stream"), client.head("/")]
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    for bare, gated in zip(responses["bare"], responses["gated"], strict=True):
        assert gated.status_code == bare.status_code
        assert gated.content == bare.content
        for key, value in bare.headers.items():
            if key != "date":
                assert gated.headers.get(key) == value, key
        assert "x-ml-model-version" in gated.headers
    assert responses["gated"][0].headers["content-length"] == "5"
    assert len(records) == 3


# --- pulsegate's own endpoints (dashboard, Prometheus metrics) --------------------------


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"the app's 404"]


def test_dashboard_served_before_begin_and_never_measured() -> None:
    gate, _, records = make_gate(dashboard=True, dashboard_token="t", warmup=5)
    client = Client(PulseGateWSGIMiddleware(_not_found, gate=gate))
    r = client.get("/_pulsegate/", buffered=True)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = client.get("/_pulsegate/", buffered=True, headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b"<html" in r.data and "x-ml-model-version" not in r.headers
    r = client.get("/_pulsegate/api/summary", buffered=True,
                   headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.json is not None and r.json["stats"]["requests"] == 0
    assert client.get("/_pulsegate/api/summary", buffered=True).status_code == 401
    body = b'{"id": "nope", "correct": true}'
    r = client.post("/_pulsegate/api/feedback", buffered=True, data=body,
                    content_type="application/json", headers={"Authorization": "Bearer t"})
    assert r.status_code == 404  # the POST body reached the handler: an unknown id
    assert gate.stats()["requests"] == 0 and records == []
    # a path beside the dashboard's is the application's, and measured
    assert client.get("/_pulsegateX", buffered=True).status_code == 404
    assert gate.stats()["requests"] == 1 and len(records) == 1


def test_dashboard_off_is_an_ordinary_request() -> None:
    gate, _, records = make_gate()
    middleware = PulseGateWSGIMiddleware(_not_found, gate=gate)
    r = Client(middleware).get("/_pulsegate/", buffered=True,
                               headers={"Authorization": "Bearer t"})
    assert r.status_code == 404 and r.data == b"the app's 404"
    assert "x-ml-model-version" in r.headers
    assert gate.stats()["requests"] == 1 and len(records) == 1


def test_prometheus_path_served_before_begin() -> None:
    gate, _, records = make_gate(prometheus=True)
    client = Client(PulseGateWSGIMiddleware(hello, gate=gate))
    assert client.get("/work", buffered=True).status_code == 200
    r = client.get("/_pulsegate/metrics", buffered=True)
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert b"pulsegate_" in r.data and "x-ml-model-version" not in r.headers
    assert client.post("/_pulsegate/metrics", buffered=True).status_code == 405
    assert gate.stats()["requests"] == 1 and len(records) == 1
    # only the metrics path is ours: the dashboard is off
    assert client.get("/_pulsegate/", buffered=True).data == b"hello"


@pytest.mark.parametrize(("status", "code"), [
    ("200 OK", 200), ("404 Not Found", 404), ("299 Custom Thing", 299), ("204", 204),
    ("2\u00b20 OK", 500), ("abc OK", 500), (b"200 OK", 200), (None, 500), (["200"], 500),
    ("0200 OK", 200),
])
def test_odd_status_lines_pass_through_untouched(status: Any, code: int) -> None:
    gate, _, records = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("content-type", "text/plain")])
        return [b"x"]

    rec, body, _ = run(PulseGateWSGIMiddleware(app, gate=gate))
    assert rec.calls[0][0] is status and body == b"x"
    assert records[-1].status == code


def test_status_lines_are_remembered_in_a_bounded_table() -> None:
    from pulsegate import wsgi

    wsgi._CODES.clear()
    assert wsgi._status_code("404 Not Found") == 404 and wsgi._CODES == {"404 Not Found": 404}
    for odd in ("2\u00b20 OK", "0200 OK", "204", b"200 OK"):
        wsgi._status_code(odd)  # type: ignore[arg-type]
    assert list(wsgi._CODES) == ["404 Not Found"]
    for i in range(600):
        wsgi._status_code(f"200 Made up {i}")
    assert 0 < len(wsgi._CODES) <= 512


class AppIterable:
    """A body object of the app's own (like werkzeug's ClosingIterator)."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None,
                 error: BaseException | None = None) -> None:
        self.chunks, self.fail_at, self.error = chunks, fail_at, error
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at and self.error is not None:
                raise self.error
            yield chunk

    def close(self) -> None:
        self.closed += 1


def serve(app: Any) -> Any:
    """What gunicorn, waitress and werkzeug do with a body: iterate, close in finally."""
    result = app(create_environ(), Recorder())
    try:
        return result, b"".join(result)
    finally:
        result.close()


def test_an_app_iterable_is_finished_once_and_its_own_close_runs_once() -> None:
    gate, _, records = make_gate()
    body = AppIterable([b"a", b"b"])
    result, data = serve(PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1],
                                                 gate=gate))
    assert data == b"ab" and body.closed == 1
    assert len(records) == 1 and records[0].status == 200 and records[0].error is None
    result.close()  # a second close is harmless: the app's ran once, one record
    assert body.closed == 1 and len(records) == 1


@pytest.mark.parametrize("body", ["list", "app iterable", "generator"])
def test_a_body_read_to_the_end_but_never_closed_still_finishes_the_request(body: str) -> None:
    # werkzeug's and Flask's test client without buffered=True, and servers that forget
    # PEP 3333's close(): the end of the body is the end of the request.
    gate, _, records = make_gate()
    chunks = [b"a", b"b"]
    app_body: Any = {"list": lambda: list(chunks), "app iterable": lambda: AppIterable(chunks),
                     "generator": lambda: (c for c in chunks)}[body]

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return app_body()

    wrapped = PulseGateWSGIMiddleware(app, gate=gate)
    for i in range(3):
        result = wrapped(create_environ(), Recorder())
        assert b"".join(result) == b"ab"  # read, not closed
        assert len(records) == i + 1 and records[-1].status == 200
    if hasattr(result, "close"):  # (a list is returned as the app made it: no close)
        result.close()  # a late close finishes nothing twice
    assert len(records) == 3 and gate.stats()["requests"] == 3


def test_the_app_iterables_close_still_runs_when_the_server_closes_after_the_end() -> None:
    gate, _, records = make_gate()
    body = AppIterable([b"a"])
    result = PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1],
                                     gate=gate)(create_environ(), Recorder())
    assert b"".join(result) == b"a" and len(records) == 1 and body.closed == 0
    result.close()
    assert body.closed == 1 and len(records) == 1


def test_an_app_iterable_failing_is_the_requests_error_when_the_server_closes_it() -> None:
    gate, _, records = make_gate()
    body = AppIterable([b"a", b"b"], fail_at=1, error=ValueError("mid-body"))
    app = PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1], gate=gate)
    with pytest.raises(ValueError):
        serve(app)
    assert body.closed == 1
    assert records[-1].status == 500 and records[-1].error == "ValueError"


def test_a_connection_error_while_closing_is_no_error_of_the_request() -> None:
    gate, _, records = make_gate()
    body = AppIterable([b"a", b"b"])
    app = PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1], gate=gate)
    result = app(create_environ(), Recorder())
    try:
        raise BrokenPipeError("client went away")  # the server's write failed
    except BrokenPipeError:
        result.close()
    assert records[-1].status == 200 and records[-1].error is None


def test_a_slotted_body_that_refuses_close_is_wrapped_and_still_finished() -> None:
    gate, _, records = make_gate()

    class Slotted:
        __slots__ = ("closed",)

        def __init__(self) -> None:
            self.closed = False

        def __iter__(self) -> Iterator[bytes]:
            return iter([b"x"])

        def close(self) -> None:
            self.closed = True

    body = Slotted()
    result, data = serve(PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1],
                                                 gate=gate))
    assert result is not body and data == b"x" and body.closed
    assert len(records) == 1 and records[0].status == 200


def test_chaining_close_leaves_no_reference_cycle() -> None:
    import gc

    gate, _, _ = make_gate()
    environ = create_environ()
    environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    body = wsgiref.util.FileWrapper(io.BytesIO(b"a"))
    app = PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), body)[1], gate=gate)
    result = app(environ, Recorder())
    assert result is body  # the server's own file wrapper: returned as is, close chained
    b"".join(result)
    result.close()
    exchange = result.close.__self__
    # the body refers to the exchange (its close); once closed, nothing leads back
    reachable = {id(o) for o in gc.get_referents(exchange)}
    reachable |= {id(o) for r in gc.get_referents(exchange) for o in gc.get_referents(r)}
    assert id(body) not in reachable


def test_every_kind_of_body_is_passed_on_whole_closed_once_and_learned_once() -> None:
    class Guarded(AppIterable):
        def __setattr__(self, name: str, value: Any) -> None:  # its close cannot be chained
            if name == "close":
                raise AttributeError(name)
            super().__setattr__(name, value)

    class Chunks(list):  # type: ignore[type-arg]
        closed = 0

        def close(self) -> None:
            type(self).closed += 1

    gate, _, records = make_gate()
    bodies: list[Any] = [AppIterable([b"a", b"b"]), Guarded([b"a", b"b"]),
                         (c for c in (b"a", b"b")), Chunks([b"a", b"b"]), (b"a", b"b")]
    for body in bodies:
        app = PulseGateWSGIMiddleware(lambda e, sr, body=body: (sr("200 OK", []), body)[1],
                                      gate=gate)
        recorder = Recorder()
        result = app(create_environ(), recorder)
        if isinstance(body, (list, tuple)):
            assert len(result) == 2  # a sized body stays sized (wsgiref's Content-Length)
        try:
            assert b"".join(result) == b"ab"
        finally:
            if hasattr(result, "close"):  # as a server does (PEP 3333)
                result.close()
    assert bodies[0].closed == 1 and bodies[1].closed == 1 and Chunks.closed == 1
    assert len(records) == len(bodies) and {r.status for r in records} == {200}


@pytest.mark.parametrize("body", ["list", "app iterable", "generator", "app raises"])
def test_a_request_leaves_no_reference_cycle_behind(body: str) -> None:
    # The exchange is the request's headers view, so the context refers back to it:
    # close (and the error path) let go of the context, and refcounting alone frees all.
    import gc

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if body == "app raises":
            raise RuntimeError("boom")
        if body == "list":
            return [b"ok"]
        return AppIterable([b"ok"]) if body == "app iterable" else iter([b"ok"])

    gate, _, _ = make_gate()
    wrapped = PulseGateWSGIMiddleware(app, gate=gate)

    def one() -> None:
        try:
            result = wrapped(create_environ(headers={"User-Agent": "t"}), Recorder())
        except RuntimeError:
            return
        for _ in result:
            pass
        if hasattr(result, "close"):  # as a server does (PEP 3333)
            result.close()

    one()  # the endpoint's model and the rest of the first request's set-up
    gc.collect()
    gc.disable()
    try:
        one()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_request_headers_are_read_from_the_exchange() -> None:
    gate, _, _ = make_gate()
    seen: list[str | None] = []
    gate.listeners.append(lambda record, ctx: seen.append(ctx.info.headers.get("user-agent")))
    run(PulseGateWSGIMiddleware(hello, gate=gate), path="/", headers={"User-Agent": "probe"})
    assert seen == ["probe"]


def test_a_body_whose_close_cannot_be_read_is_still_served() -> None:
    class Odd(AppIterable):
        @property
        def close(self) -> Any:  # type: ignore[override]
            raise RuntimeError("no close for you")

    gate, _, records = make_gate()
    app = PulseGateWSGIMiddleware(lambda e, sr: (sr("200 OK", []), Odd([b"a", b"b"]))[1],
                                  gate=gate)
    result = app(create_environ(), Recorder())
    assert b"".join(result) == b"ab"
    result.close()  # type: ignore[attr-defined]
    assert len(records) == 1 and records[0].status == 200
    assert gate.stats()["internal_errors_by_kind"] == {"wsgi.body:RuntimeError": 1}


def test_memory_stays_flat_whatever_the_clients_send() -> None:
    """Attack probe (held; no end-to-end bound was tested before): every request has a
    new client address behind a trusted proxy, a new path under a cached prefix, a new
    query, Host and header name, one in three an invented method -- with the rate
    limiter, the allocator and the response cache on. Memory after 15 000 requests is
    what it was after 6 000 (every cap reached: the largest, the client-address
    cache, holds 4 096), and pulsegate recorded no fault."""
    import gc
    import tracemalloc

    # time moves 0.5 ms a request whatever the machine's speed: what is kept per second
    # (series, windows) grows alike on an idle and a loaded machine
    clock = FakeClock(100.0)
    gate = PulseGate(Config(log_events=False, rate_limiting=True, resource_allocation=True,
                            response_cache=True, response_cache_routes=["/u*"],
                            response_cache_max_entries=100, trusted_proxies=["10.0.0.0/8"],
                            max_clients=500, max_endpoints=100), clock=clock)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    mw = PulseGateWSGIMiddleware(app, gate=gate)

    def request(i: int) -> None:
        environ = {"REQUEST_METHOD": ("GET", "POST", f"M{i}")[i % 3],
                   "PATH_INFO": f"/u/{i}/" + "p" * 200, "QUERY_STRING": f"q={i}" + "x" * 300,
                   "SERVER_NAME": "h", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                   "REMOTE_ADDR": "10.0.0.2", "HTTP_HOST": f"h{i}.example",
                   "HTTP_X_FORWARDED_FOR": f"{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}.7",
                   f"HTTP_X_H{i}_" + "N" * 100: "v"}
        clock.t += 0.0005
        body = mw(environ, lambda status, headers, exc_info=None: None)
        assert b"".join(body) in (b"ok", b"")
        getattr(body, "close", lambda: None)()

    tracemalloc.start()
    try:
        used = []
        for start, end in ((0, 6_000), (6_000, 15_000)):
            for i in range(start, end):
                request(i)
            gate.scheduler.run_all()  # the queues the scheduler drains: empty at both points,
            gc.collect()              # however far behind its thread is on a loaded machine
            used.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
        gate.close()
    assert used[1] < used[0] + 512 * 1024, used
    assert gate.faults.total == 0, gate.faults.by_kind
