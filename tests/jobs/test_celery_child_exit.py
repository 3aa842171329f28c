"""A prefork pool child leaves through ``os._exit`` (billiard), which runs no ``atexit``
handler: its last runs must still be learnt and saved. A real worker whose children each
run one task (``--max-tasks-per-child=1``) on a real Redis broker, with ``state_dir``;
the runs are read back from the store the children wrote, as ``pulsegate report``
does. With CI=true a missing redis-server fails the test, never skips it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulsegate import cli
from services import redis_server

pytestmark = pytest.mark.service

HERE = Path(__file__).resolve().parent


def stored_endpoints(state_dir: Path) -> dict[str, int]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["report", "--state-dir", str(state_dir), "--json"]) == 0
    report: dict[str, Any] = json.loads(out.getvalue())
    return {row["endpoint"]: row["requests"] for row in report["endpoints"]}


def test_a_pool_childs_last_runs_are_learnt_and_saved_before_it_exits(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with redis_server() as redis:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]),
                   JOBS_TEST_WORKER="1", JOBS_TEST_BROKER=redis.url,
                   JOBS_TEST_LEARNING="background", JOBS_TEST_STATE_DIR=str(state_dir))
        sys.modules.pop("jobs_celery_app", None)
        os.environ["JOBS_TEST_BROKER"] = redis.url
        sys.path.insert(0, str(HERE))
        try:
            import jobs_celery_app as tasks
        finally:
            sys.path.remove(str(HERE))
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobs_celery_app", "worker",
             "--pool=prefork", "--concurrency=1", "--max-tasks-per-child=1",
             "--loglevel=WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", "pulsegate-exit@%h"],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for i in range(3):  # each in a child of its own, which exits right after
                assert tasks.add.delay(i, 1).get(timeout=60) == i + 1
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            from pulsegate.jobs.celery import uninstrument

            uninstrument()
            sys.modules.pop("jobs_celery_app", None)
    learnt = stored_endpoints(state_dir)
    assert learnt.get("JOB jobs_celery_app.add", 0) >= 3, learnt
