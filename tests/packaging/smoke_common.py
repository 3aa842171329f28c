"""What the smoke scripts share. They run in a fresh virtual environment that holds the
built wheel and one set of extras -- nothing of the source tree, no test tools -- so
each drives its app with what the framework itself ships (or with a few lines of ASGI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def check_installed() -> None:
    """pulsegate comes from this environment's site-packages, not from a checkout."""
    import pulsegate

    where = Path(pulsegate.__file__).resolve()
    assert "site-packages" in where.parts, f"pulsegate imported from {where}"
    assert Path(sys.prefix).resolve() in where.parents, (where, sys.prefix)


def asgi_get(app: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app, as a server would send it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": raw_path,
             "raw_path": raw_path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def ml_headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ml-")}


def run_cli(*args: str) -> str:
    """``pulsegate ARGS`` through this environment's console script; its stdout."""
    exe = Path(sys.executable).with_name("pulsegate" + (".exe" if os.name == "nt" else ""))
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def report_shows(state_dir: str, *needles: str) -> str:
    out = run_cli("report", "--state-dir", state_dir)
    for needle in needles:
        assert needle in out, f"{needle!r} not in the report:\n{out}"
    return out
