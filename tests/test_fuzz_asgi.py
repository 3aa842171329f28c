"""Request fuzzing through the ASGI middleware: the application's messages are the same
with and without pulsegate apart from pulsegate's headers, and nothing inside pulsegate
fails (see ``tests/fuzz_requests.py``)."""

from __future__ import annotations

import asyncio
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
from pulsegate.asgi import PulseGateMiddleware

Message = dict[str, Any]


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body (noticing a disconnect), answers with a digest of all it
    was given, in chunks; raises before or after starting the response on demand."""
    plan = scope["plan"]
    body, disconnected = b"", False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected = True
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if plan["fail"] == "before":
        raise AppFailure("before the response")
    seen = digest_of(scope["method"].encode("utf-8", "surrogatepass"),
                     scope["path"].encode("utf-8", "surrogatepass"), scope["query_string"],
                     b"\n".join(k + b":" + v for k, v in scope["headers"]), body,
                     b"gone" if disconnected else b"here")
    status = plan["status"]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"x-app", b"1"),
                            (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]})
    if plan["fail"] == "after":
        raise AppFailure("after the response started")
    n = plan["chunks"]
    for i in range(n):
        await send({"type": "http.response.body", "body": seen[i::n], "more_body": i < n - 1})


def scope_for(req: dict[str, Any]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": req["method"], "scheme": "http", "path": req["path"],
            "raw_path": req["path"].encode("utf-8", "surrogatepass"),
            "query_string": req["query"], "root_path": "", "headers": list(req["headers"]),
            "client": list(req["client"]) if req["client"] else None,
            "server": ["testserver", 80], "plan": req}


async def run(app: Any, req: dict[str, Any]) -> tuple[list[Message], str | None]:
    chunks = list(req["body"])
    cut = req["disconnect_after"]
    delivered = 0

    async def receive() -> Message:
        nonlocal delivered
        if cut is not None and delivered >= cut:
            return {"type": "http.disconnect"}
        if not chunks:
            delivered += 1
            return {"type": "http.request", "body": b"", "more_body": False}
        delivered += 1
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    sent: list[Message] = []
    fails_after = req["send_fails_after"]

    async def send(message: Message) -> None:
        if fails_after is not None and len(sent) >= fails_after:
            raise ConnectionResetError("peer gone")
        sent.append(message)

    error = None
    try:
        await app(scope_for(req), receive, send)
    except (AppFailure, ConnectionResetError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return sent, error


def comparable(messages: list[Message]) -> list[Message]:
    out = []
    for m in messages:
        m = dict(m)
        if m["type"] == "http.response.start":
            m["headers"] = [tuple(h) for h in m.get("headers") or () if not is_pulsegate_header(h[0])]
        out.append(m)
    return out


GATE = new_gate()
GATED = PulseGateMiddleware(echo_app, gate=GATE)
LOOP = asyncio.new_event_loop()  # one loop for every example: asyncio.run costs ~1 ms


@fuzz_settings(200)
@given(requests())
def test_asgi_responses_identical_and_no_internal_error(req: dict[str, Any]) -> None:
    bare, bare_error = LOOP.run_until_complete(run(echo_app, req))
    gated, gated_error = LOOP.run_until_complete(run(GATED, req))
    assert gated_error == bare_error
    assert comparable(gated) == comparable(bare)
    no_internal_error(GATE)
