"""The real rate limiter through every adapter under its real server: once a client's
bucket is empty the adapter answers 429 itself (``Retry-After``, ``RateLimit``), as a
native response of the framework, without running the view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from reference_servers import (
    DEPLOYMENTS,
    Running,
    assert_clean_shutdown,
    database_url,
    start,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.e2e

BURST = 3


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    tmp: Path = tmp_path_factory.mktemp("limited")
    running = {name: start(dep, database_url("sqlite", tmp, None, name.replace("-", "_")),
                           tmp / f"{name}.log", PULSEGATE_RATE_LIMITING="true",
                           PULSEGATE_RATE_LIMIT="3/hour", PULSEGATE_RATE_LIMIT_BURST=str(BURST))
               for name, dep in DEPLOYMENTS.items()}
    try:
        for r in running.values():
            wait_ready(r)
        yield running
    finally:
        for r in running.values():
            stop(r)
    for r in running.values():
        assert_clean_shutdown(r)


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_429_once_the_bucket_is_empty(limited: dict[str, Running], name: str) -> None:
    dep, srv = DEPLOYMENTS[name], limited[name]
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        answers = [client.get(dep.path("/books/1")) for _ in range(BURST + 2)]
    codes = [r.status_code for r in answers]
    assert codes[:BURST] == [200] * BURST, codes
    assert codes[BURST:] == [429, 429], codes
    for ok in answers[:BURST]:
        assert ok.json()["statements"] == 1
    rejected = answers[-1]
    assert int(rejected.headers["retry-after"]) >= 1
    assert "ratelimit" in rejected.headers
    assert rejected.headers["x-ml-optimization-applied"] != "none"
    assert "x-ml-query-count" not in rejected.headers  # the view never ran: no SQL
    assert rejected.headers["content-length"] == str(len(rejected.content))
