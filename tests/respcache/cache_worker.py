"""One worker process of a small WSGI app behind pulsegate's response cache with the
Redis store: ``python cache_worker.py <redis url> <prefix> <items file> <port>`` serves
``GET``/``PUT /items/<pk>`` (the items live in a JSON file: the workers' shared
database) on 127.0.0.1 until killed. Also imported by the tests as worker A."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pulsegate.engine import PulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware


def build(redis_url: str, prefix: str, items: Path) -> tuple[Any, PulseGate]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        pk = environ["PATH_INFO"].rsplit("/", 1)[-1]
        data = json.loads(items.read_text())
        if environ["REQUEST_METHOD"] == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            data[pk] = environ["wsgi.input"].read(length).decode()
            items.write_text(json.dumps(data))
            body = b"ok"
        else:
            body = f"item {data.get(pk, '?')}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    gate = PulseGate(response_cache=True, response_cache_routes=["/items*"],
                     response_cache_min_saving_ms=0.0, response_cache_storage=redis_url,
                     response_cache_key_prefix=prefix,
                     response_cache_invalidate={"PUT /items*": ["$path"]})
    return PulseGateWSGIMiddleware(app, gate=gate), gate


if __name__ == "__main__":
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    wsgi, _ = build(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
    make_server("127.0.0.1", int(sys.argv[4]), wsgi, handler_class=Quiet).serve_forever()
