"""The ASGI middleware over real HTTP: a FastAPI app under uvicorn on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import free_port, wait_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{ROOT / 'src'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "basic_asgi_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
        # uvicorn re-raises the SIGTERM it handled after a graceful shutdown
        assert proc.returncode in (0, -signal.SIGTERM), out.decode(errors="replace")
        assert b"Traceback" not in out, out.decode(errors="replace")


@pytest.mark.e2e
def test_headers_over_real_http(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        responses = [client.get(f"/items/{i}") for i in range(10)]
        last = responses[-1]
        assert last.status_code == 200 and last.json() == {"id": 9}
        assert float(last.headers["x-ml-predicted-latency-ms"]) > 0
        assert 0 < int(last.headers["x-ml-prediction-confidence"]) <= 100
        assert 0.0 <= float(last.headers["x-ml-anomaly-score"]) <= 1.0
        assert last.headers["x-ml-optimization-applied"] == "none"
        assert "x-ml-query-count" not in last.headers  # no SQL: no query headers
        assert last.headers["x-ml-model-version"]
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and "x-ml-model-version" in missing.headers
        streamed = client.get("/stream")
        assert streamed.content == b"a" * 1000 + b"b" * 1000
        assert "x-ml-anomaly-score" in streamed.headers
        health = client.get("/healthz")
        assert health.status_code == 200 and "x-ml-model-version" not in health.headers
