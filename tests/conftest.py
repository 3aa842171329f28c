from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

from services import RedisServer, mariadb_server, pgserver_bindir, postgres_server, redis_server

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Timing deadlines mean nothing on a shared 2-core machine; in CI the examples are also
# derandomized, so a run is reproducible and a red CI is a real regression.
settings.register_profile("pulsegate", deadline=None)
settings.register_profile("pulsegate-ci", deadline=None, derandomize=True)
settings.load_profile("pulsegate-ci" if IN_CI else "pulsegate")


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisServer]:
    """A real Redis on loopback for the session (fails, never skips, when missing)."""
    with redis_server() as server:
        yield server


@pytest.fixture()
def redis_instance() -> Iterator[RedisServer]:
    """A real Redis of this test's own, which the test may stop and start."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres16_url() -> Iterator[str]:
    """PostgreSQL 16 (the pgserver wheel's binaries), for what needs 16+."""
    with postgres_server(pgserver_bindir()) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """MariaDB from Debian's packages, for the advisor's MySQL plans."""
    with mariadb_server() as url:
        yield url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _no_leaked_request_context() -> Iterator[None]:
    """A test that begins a request must finish it: a leaked ContextVar would make the
    next test's queries land in a stale request."""
    from pulsegate.context import current, query_sink

    sink = query_sink.get()  # the pytest plugin's own capture, if one is open
    yield
    assert current() is None, "a test left a request context open"
    # a finished request stays in the variable (ignored) until the next one replaces it
    left = query_sink.get()
    assert left is sink or (left is not None and left.finished), \
        "a test left a query sink open"
