"""Request fuzzing through the WSGI middleware: status, headers (apart from
pulsegate's) and body bytes are the application's own, the application's iterable is
closed exactly as without pulsegate -- also when the client goes away mid-body -- and
nothing inside pulsegate fails (see ``tests/fuzz_requests.py``)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

from hypothesis import given

from fuzz_requests import (
    AppFailure,
    digest_of,
    fuzz_settings,
    is_pulsegate_header,
    new_gate,
    no_internal_error,
    requests,
)
from pulsegate.wsgi import PulseGateWSGIMiddleware


class EchoBody:
    """The response iterable: chunks of a digest of the request; records its close()."""

    def __init__(self, chunks: list[bytes], log: list[str]) -> None:
        self.chunks, self.log = chunks, log

    def __iter__(self) -> Iterator[bytes]:
        for c in self.chunks:
            self.log.append("chunk")
            yield c

    def close(self) -> None:
        self.log.append("close")


def echo_app(environ: dict[str, Any], start_response: Any) -> Any:
    plan, log = environ["fuzz.plan"], environ["fuzz.log"]
    length = environ.get("CONTENT_LENGTH") or ""
    body = environ["wsgi.input"].read(int(length) if length.isdigit() else -1)
    if plan["fail"] == "before":
        raise AppFailure("before the response")
    headers = sorted((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    seen = digest_of(environ["REQUEST_METHOD"].encode("latin-1"),
                     environ["PATH_INFO"].encode("latin-1"),
                     environ["QUERY_STRING"].encode("latin-1"),
                     "\n".join(f"{k}:{v}" for k, v in headers).encode("latin-1"), body)
    start_response(f"{plan['status']} Whatever", [("Content-Type", "text/plain"),
                                                  ("X-App", "1"), ("Set-Cookie", "a=1")])
    if plan["fail"] == "after":
        try:
            raise AppFailure("after the response started")
        except AppFailure:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
            return [b"failed"]
    n = plan["chunks"]
    return EchoBody([seen[i::n] for i in range(n)], log)


def environ_for(req: dict[str, Any], log: list[str]) -> dict[str, Any]:
    body = b"".join(req["body"])
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req["method"],
        "PATH_INFO": req["path"].encode("utf-8", "surrogatepass").decode("latin-1"),
        "QUERY_STRING": req["query"].decode("latin-1"), "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "fuzz.plan": req, "fuzz.log": log}
    if req["client"]:
        environ["REMOTE_ADDR"] = req["client"][0]
    for name, value in req["headers"]:
        key = name.upper().decode("latin-1").replace("-", "_")  # ASCII-only upper, as servers do
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value.decode("latin-1")
            continue
        key = "HTTP_" + key
        text = value.decode("latin-1")  # a server joins repeated lines with ","
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def run(app: Any, req: dict[str, Any]) -> tuple[Any, ...]:
    log: list[str] = []
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, [h for h in headers if not is_pulsegate_header(h[0])]))
        return lambda data: None

    try:
        result = app(environ_for(req, log), start_response)
    except AppFailure as exc:
        return ("raised", str(exc), started, log)
    out = []
    cut = req["disconnect_after"]  # the client goes away after this many chunks
    for chunk in result:
        out.append(chunk)
        if cut is not None and len(out) >= cut:
            break
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return ("answered", started, out, log)


GATE = new_gate()
GATED = PulseGateWSGIMiddleware(echo_app, gate=GATE)


@fuzz_settings(200)
@given(requests())
def test_wsgi_responses_identical_and_no_internal_error(req: dict[str, Any]) -> None:
    assert run(GATED, req) == run(echo_app, req)
    no_internal_error(GATE)
