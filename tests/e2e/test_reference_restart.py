"""Kill a reference app (SIGTERM, as a process manager would) and start it again on the
same ``state_dir``: its first response already carries the forecast and confidence it
had learnt, where a cold start would say 0.

The final snapshot comes from the ASGI lifespan shutdown (FastAPI) or the worker's
``atexit`` (gunicorn). Django under uvicorn has neither -- Django's ASGI handler refuses
the lifespan protocol and uvicorn re-raises SIGTERM, so ``atexit`` never runs -- and
relies on the periodic snapshot (``snapshot_interval``), which this test shortens."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from reference_servers import DEPLOYMENTS, assert_clean_shutdown, database_url, serve

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("name", "final_snapshot"), [
    ("fastapi-uvicorn", True), ("flask-gunicorn", True), ("django-uvicorn", False)])
def test_restarted_reference_app_is_warm(name: str, final_snapshot: bool,
                                         tmp_path: Path) -> None:
    dep = DEPLOYMENTS[name]
    url = database_url("sqlite", tmp_path, None, name.replace("-", "_"))
    state = {"PULSEGATE_STATE_DIR": str(tmp_path / "state"), "PULSEGATE_WARMUP": "5"}
    if not final_snapshot:
        state["PULSEGATE_SNAPSHOT_INTERVAL"] = "1"
    book = dep.path("/books/1")
    with serve(dep, url, tmp_path / "first.log", **state) as first, \
            httpx.Client(base_url=first.url, timeout=30) as client:
        before = [client.get(book) for _ in range(40)]
        if not final_snapshot:  # wait for a periodic snapshot, then one more request
            time.sleep(2.5)
            before.append(client.get(book))
    assert_clean_shutdown(first)
    last = before[-1]
    assert last.status_code == 200
    confidence = int(last.headers["x-ml-prediction-confidence"])
    assert confidence > 0

    with serve(dep, url, tmp_path / "second.log", **state) as second:
        warm = httpx.get(second.url + book, timeout=30)
    assert_clean_shutdown(second)
    assert warm.status_code == 200
    restored = int(warm.headers["x-ml-prediction-confidence"])
    # The same model, one request further on: the confidence it had, not a cold 0.
    assert restored > 0 and abs(restored - confidence) <= 10, (confidence, restored)
    assert float(warm.headers["x-ml-predicted-latency-ms"]) > 0
