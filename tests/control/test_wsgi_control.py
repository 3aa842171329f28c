"""The control step through the WSGI middleware, with real threads."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from pulsegate.engine import PulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware


def call(app: Any, path: str = "/", **extra: str) -> tuple[str, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "REMOTE_ADDR": "10.1.2.3", "SERVER_NAME": "t", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", **extra}
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["status"], got["headers"] = status, dict(headers)
        return lambda b: None

    result = app(environ, start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return got["status"], got["headers"], body


def test_wsgi_throttles_with_headers() -> None:
    def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"hi"]

    gate = PulseGate(rate_limiting=True, rate_limit="2/minute")
    app = PulseGateWSGIMiddleware(hello, gate=gate)
    assert call(app)[0].startswith("200")
    status, headers, _ = call(app)
    assert status.startswith("200") and headers["ratelimit"].startswith('"default";r=0;')
    status, headers, _ = call(app)
    assert status.startswith("429") and headers["retry-after"] == "30"
    assert headers["x-ml-optimization-applied"] == "throttle"


def test_wsgi_threads_shed_low_priority_and_release_slots() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"].startswith("/slow"):
            entered.release()
            release.wait(10)
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    gate = PulseGate(resource_allocation=True, min_concurrency=2, max_concurrency=2,
                     initial_concurrency=2, max_queue_wait=0.0,
                     priority_rules={"/low*": "low", "/slow*": "high"})
    app = PulseGateWSGIMiddleware(slow, gate=gate)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(call(app, "/slow")[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    for _ in threads:
        assert entered.acquire(timeout=10)
    status, headers, _ = call(app, "/low/x")
    assert status.startswith("503") and headers["x-ml-optimization-applied"] == "shed"
    release.set()
    for t in threads:
        t.join(10)
    assert all(s.startswith("200") for s in results)
    alloc = gate.control.allocator
    assert alloc.inflight == 0 and alloc.shed == [0, 0, 1] and alloc.admitted[0] == 2
    assert call(app, "/low/x")[0].startswith("200")  # slots came back
