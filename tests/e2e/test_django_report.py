"""``manage.py pulsegate report`` on the Django reference project: inside the server
process (the project's /pulsegate/report/ view runs the command) it lists the N+1 with
its fix; in a fresh ``manage.py`` process after the server stopped, the baselines come
back from the persisted state (``state_dir``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from reference_servers import DEPLOYMENTS, assert_clean_shutdown, database_url, serve

pytestmark = pytest.mark.e2e


def test_report_in_server_and_after_restart(tmp_path: Path) -> None:
    dep = DEPLOYMENTS["django-gunicorn"]
    state = tmp_path / "state"
    state.mkdir()
    db = database_url("sqlite", tmp_path, None, "report")
    with serve(dep, db, tmp_path / "server.log", PULSEGATE_STATE_DIR=str(state)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as client:
        for _ in range(3):
            assert client.get("/authors/nplusone/").status_code == 200
            assert client.get("/books/nplusone/").status_code == 200
            assert client.get("/books/eager/").status_code == 200
        live = client.get("/pulsegate/report/").text
    assert_clean_shutdown(srv)
    assert "GET /authors/nplusone/" in live
    assert 'prefetch_related("books")' in live
    assert 'select_related("author")' in live
    env = dict(os.environ, DATABASE_URL=db, PULSEGATE_STATE_DIR=str(state),
               DJANGO_SETTINGS_MODULE="bookshop.settings",
               PYTHONPATH=os.pathsep.join([str(dep.app_dir), str(dep.app_dir.parents[1] / "src")]))
    done = subprocess.run([sys.executable, "manage.py", "pulsegate", "report", "--json"],
                          cwd=dep.app_dir, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    restored = {e["endpoint"]: e["requests"] for e in report["endpoints"]}
    assert restored["GET /authors/nplusone/"] == 3
    assert restored["GET /books/eager/"] == 3
    stats = subprocess.run([sys.executable, "manage.py", "pulsegate", "stats", "--json"],
                           cwd=dep.app_dir, env=env, capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stderr
    # the server's counts (9 requests and the report view), from the store; the
    # manage.py processes added no worker of their own
    counted = json.loads(stats.stdout)
    assert counted["totals"]["requests"] == 10 and counted["workers"] == 1
