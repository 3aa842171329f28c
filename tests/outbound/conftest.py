"""A real HTTP upstream on loopback for the outbound tests: ``/ok`` (200), ``/fail``
(503), ``/slow/<ms>`` (200 after a wait), anything else 404. Its delay can be raised
for every path (``server.extra_ms``) to play an upstream that degrades."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    extra_ms = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Upstream

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        delay = self.server.extra_ms
        if path.startswith("/slow/"):
            delay += float(path.rsplit("/", 1)[1])
        if delay:
            time.sleep(delay / 1000.0)
        status = 200 if path == "/ok" or path.startswith(("/slow/", "/users/")) else \
            503 if path == "/fail" else 404
        body = b"x"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    server = Upstream(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def second_upstream() -> Iterator[Upstream]:
    server = Upstream(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
