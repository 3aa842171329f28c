"""Kill and restart real servers: the first response after the restart is warm."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pulsegate.registry.store import DB_NAME
from services import free_port, wait_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def start(cmd: list[str], state: Path, snapshot: str = "3600") -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{ROOT / 'src'}",
               PULSEGATE_TEST_STATE=str(state), PULSEGATE_TEST_SNAPSHOT=snapshot)
    proc = subprocess.Popen([sys.executable, "-m", *[c.replace("PORT", str(port)) for c in cmd]],
                            env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        raise AssertionError(proc.communicate()[0].decode(errors="replace")) from None
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    text = out.decode(errors="replace")
    assert "Traceback" not in text, text
    return text


UVICORN = ["uvicorn", "restart_apps:asgi_app", "--factory", "--host", "127.0.0.1", "--port",
           "PORT", "--log-level", "warning"]


@pytest.mark.e2e
def test_uvicorn_restart_is_warm(tmp_path) -> None:
    proc, url = start(UVICORN, tmp_path)  # snapshots only at shutdown (atexit)
    try:
        with httpx.Client(base_url=url) as client:
            for i in range(80):
                client.get(f"/items/{i}")
            before = client.get("/debug").json()
    finally:
        stop(proc)
    assert before["n"] == 80 and before["confidence"] > 0
    proc, url = start(UVICORN, tmp_path)
    try:
        with httpx.Client(base_url=url) as client:
            restored = client.get("/debug").json()
            first = client.get("/items/1").headers
    finally:
        stop(proc)
    assert restored["pid"] != before["pid"]
    assert (restored["predicted"], restored["confidence"], restored["n"]) == \
        (before["predicted"], before["confidence"], before["n"])
    assert first["x-ml-prediction-confidence"] == str(round(before["confidence"]))
    assert first["x-ml-predicted-latency-ms"] == f"{before['predicted']:.1f}"


GUNICORN = ["gunicorn", "restart_apps:wsgi_app()", "--workers", "3", "--bind",
            "127.0.0.1:PORT", "--log-level", "warning", "--graceful-timeout", "10"]


@pytest.mark.e2e
@pytest.mark.parametrize("preload", [False, True], ids=["import-per-worker", "preload"])
def test_gunicorn_workers_share_one_state_file(tmp_path, preload) -> None:
    # --preload builds the gate in the master and forks it: each worker must still get
    # its own worker id, prediction ids and SQLite connection.
    cmd = [*GUNICORN, "--preload"] if preload else GUNICORN
    proc, url = start(cmd, tmp_path, snapshot="1")
    pids, workers, tags = set(), set(), set()
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=url, headers={"connection": "close"}) as client:
            while time.monotonic() < deadline and len(pids) < 3:
                for i in range(20):
                    client.get(f"/items/{i}")
                info = client.get("/debug").json()
                pids.add(info["pid"])
                workers.add(info["worker"])
                tags.add(info["tag"])
            time.sleep(1.5)  # one more snapshot round in every worker
    finally:
        stop(proc)
    assert len(pids) >= 2, "requests never reached a second worker"
    assert len(workers) == len(tags) == len(pids)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        workers = conn.execute("SELECT count(*) FROM kv WHERE section = 'workers'").fetchone()[0]
        sections = conn.execute("SELECT count(DISTINCT section) FROM kv WHERE section LIKE "
                                "'ep:%'").fetchone()[0]
    finally:
        conn.close()
    assert workers >= 2 and sections >= 2
    assert not list(tmp_path.glob("*.corrupt-*"))
    proc, url = start(cmd, tmp_path, snapshot="1")
    try:
        with httpx.Client(base_url=url) as client:
            state = client.get("/debug").json()
            first = client.get("/items/1").headers
    finally:
        stop(proc)
    assert state["n"] > 0 and state["confidence"] > 0  # warm: seeded from the fleet
    assert int(first["x-ml-prediction-confidence"]) > 0
