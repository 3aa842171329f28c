"""The three reference apps under their real servers (uvicorn, gunicorn), on SQLite and
on a real PostgreSQL cluster: headers, query counts against the ORM's own count, N+1
detected with the relationship and the fix, eager endpoint clean, 404/500 recorded,
client disconnects, clean shutdown."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from reference_servers import (
    DEPLOYMENTS,
    Deployment,
    Running,
    assert_clean_shutdown,
    database_url,
    serve,
)

pytestmark = pytest.mark.e2e

CASES = [(name, db) for name in DEPLOYMENTS for db in ("sqlite", "postgresql")]


def apps_where(app_dir: Callable[[str], bool]) -> Any:
    """Run a test only on the deployments whose app directory ``app_dir`` accepts (the
    ``app`` fixture, parametrized over those cases alone)."""
    cases = [(n, d) for n, d in CASES if app_dir(DEPLOYMENTS[n].app_dir.name)]
    return pytest.mark.parametrize("app", cases, ids=[f"{n}-{d}" for n, d in cases],
                                   indirect=True)

#: Number of authors the apps seed (8 authors x 3 books x 2 reviews).
AUTHORS = 8

WELL_FORMED = {
    "x-ml-prediction-confidence": r"^(100|[1-9]?[0-9])$",
    "x-ml-anomaly-score": r"^(0(\.\d+)?|1(\.0+)?)$",
    "x-ml-optimization-applied": r"^[a-z_]+$",
    "x-ml-query-count": r"^\d+$",
    "x-ml-query-ms": r"^\d+(\.\d+)?$",
    "x-ml-nplusone": r"^\d+$",
    "x-ml-model-version": r"^[0-9A-Za-z.\-+]+$",
}


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}-{d}" for n, d in CASES])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[Deployment, Running]]:
    name, db = request.param
    dep = DEPLOYMENTS[name]
    tmp = tmp_path_factory.mktemp(name)
    pg = request.getfixturevalue("postgres_url") if db == "postgresql" else None
    url = database_url(db, tmp, pg, name.replace("-", "_"))
    with serve(dep, url, tmp / "server.log") as running:
        yield dep, running
    assert_clean_shutdown(running)


def debug(client: httpx.Client, dep: Deployment) -> dict[str, Any]:
    """The app's debugging view of pulsegate, on a fresh connection (a server may close
    a kept-alive one after a 500)."""
    data: dict[str, Any] = httpx.get(str(client.base_url.join(dep.path("/pulsegate/detections"))),
                                     timeout=30).json()
    return data


def test_headers_present_and_well_formed(app: tuple[Deployment, Running]) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for _ in range(5):
            r = client.get(dep.path("/books/1"))
        assert r.status_code == 200 and r.json()["id"] == 1
        for name, pattern in WELL_FORMED.items():
            assert re.match(pattern, r.headers[name]), (name, r.headers.get(name))
        assert float(r.headers["x-ml-predicted-latency-ms"]) > 0
        assert r.headers["x-ml-optimization-applied"] == "none"
        endpoints = {e["endpoint"]: e["requests"] for e in debug(client, dep)["endpoints"]}
        assert endpoints["GET " + dep.routes["book"]] >= 5


@pytest.mark.parametrize(("path", "expected"), [
    ("/authors/nplusone", 1 + AUTHORS), ("/authors/eager", 2), ("/books/2", 1), ("/slow", 1)])
def test_query_count_equals_what_the_orm_ran(app: tuple[Deployment, Running], path: str,
                                             expected: int) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        r = client.get(dep.path(path))
    assert r.status_code == 200
    assert r.json()["statements"] == expected  # the ORM's own count
    assert r.headers["x-ml-query-count"] == str(expected)


def test_nplusone_detected_with_relationship_and_fix(app: tuple[Deployment, Running]) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        bad = client.get(dep.path("/authors/nplusone"))
        good = client.get(dep.path("/authors/eager"))
        found = debug(client, dep)["by_endpoint"]
    assert int(bad.headers["x-ml-nplusone"]) == 1
    assert good.headers["x-ml-nplusone"] == "0"
    (det,) = [d for d in found["GET " + dep.routes["nplusone"]] if d["kind"] == "n_plus_one"]
    assert det["relationship"] == "Author.books"
    if dep.app_dir.name == "django_app":
        assert 'prefetch_related("books")' in det["suggestion"]
    else:
        assert "selectinload(Author.books)" in det["suggestion"]
    assert det["count"] == AUTHORS
    assert "GET " + dep.routes["eager"] not in found


def test_404_and_500_are_recorded(app: tuple[Deployment, Running]) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        before = debug(client, dep)["stats"]
        assert client.get(dep.path("/no/such/page")).status_code == 404
        missing = client.get(dep.path("/books/999999"))
        assert missing.status_code == 404 and "x-ml-model-version" in missing.headers
        failed = client.get(dep.path("/error"))
        assert failed.status_code == 500
        if dep.app_dir.name != "fastapi_app":
            # Starlette renders the 500 page in ServerErrorMiddleware, outside every user
            # middleware, so no middleware can add headers to it; it is recorded below.
            assert "x-ml-model-version" in failed.headers
        after = debug(client, dep)
    endpoints = {e["endpoint"] for e in after["endpoints"]}
    assert {"GET UNMATCHED", "GET " + dep.routes["book"], "GET " + dep.routes["error"]} <= endpoints
    assert after["stats"]["errors"] == before["errors"] + 1
    assert after["stats"]["internal_errors"] == 0


def test_streaming_and_client_disconnect(app: tuple[Deployment, Running]) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        full = client.get(dep.path("/stream?chunks=4&delay_ms=5"))
        assert full.content == b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
        assert "x-ml-model-version" in full.headers
    # Leave mid-response: read the first chunk of a 1-second stream and hang up.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"GET {dep.path('/stream?chunks=100&delay_ms=10')} HTTP/1.1\r\n"
                  f"Host: 127.0.0.1\r\n\r\n".encode())
        assert b"chunk 0" in s.recv(65536) or b"chunk 0" in s.recv(65536)
    key = "GET " + dep.routes["stream"]
    deadline = time.monotonic() + 8
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        while True:
            data = debug(client, dep)
            counts = {e["endpoint"]: e["requests"] for e in data["endpoints"]}
            if counts.get(key) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert counts.get(key) == 2, counts  # the abandoned stream was finished too
        assert data["stats"]["internal_errors"] == 0
        # and the server is still healthy
        assert client.get(dep.path("/books/3")).status_code == 200


def test_readme_exists(app: tuple[Deployment, Running]) -> None:
    dep, _ = app
    text = (dep.app_dir / "README.md").read_text()
    assert dep.server in text and "DATABASE_URL" in text



def test_many_to_one_nplusone_and_its_fix(app: tuple[Deployment, Running]) -> None:
    """The other N+1 shape: a many-to-one (ForeignKey) loaded row by row. Django runs
    one query per book; SQLAlchemy's identity map runs one per distinct author."""
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        bad = client.get(dep.path("/books/nplusone"))
        good = client.get(dep.path("/books/eager"))
        found = debug(client, dep)["by_endpoint"]
    django = dep.app_dir.name == "django_app"
    loads = 3 * AUTHORS if django else AUTHORS
    assert bad.json()["statements"] == 1 + loads == int(bad.headers["x-ml-query-count"])
    assert good.json()["statements"] == 1 == int(good.headers["x-ml-query-count"])
    assert bad.headers["x-ml-nplusone"] == "1" and good.headers["x-ml-nplusone"] == "0"
    (det,) = [d for d in found["GET " + dep.path("/books/nplusone")] if d["kind"] == "n_plus_one"]
    assert det["relationship"] == "Book.author"
    assert det["count"] == loads
    if django:
        assert 'select_related("author")' in det["suggestion"]
    else:
        assert "load(Book.author)" in det["suggestion"]  # joinedload / selectinload
    assert "GET " + dep.path("/books/eager") not in found


@apps_where(lambda name: name != "fastapi_app")  # the FastAPI app serves JSON, no templates
def test_template_nplusone_points_at_the_template_line(app: tuple[Deployment, Running]) -> None:
    """A lazy relation read in a template (Jinja under gunicorn, Django templates under
    gunicorn and uvicorn): the call site is the template file and line, not the compiled
    module's line or "unknown"."""
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        page = client.get(dep.path("/books/page"))
        found = debug(client, dep)["by_endpoint"]
    assert page.status_code == 200 and page.headers["x-ml-nplusone"] == "1"
    (det,) = [d for d in found["GET " + dep.path("/books/page")] if d["kind"] == "n_plus_one"]
    assert det["relationship"] == "Book.author"
    template = "library/books_page.html" if dep.app_dir.name == "django_app" else "books_page.html"
    assert det["call_site"].endswith(f"{template}:6 in template"), det["call_site"]


@apps_where(lambda name: name == "fastapi_app")  # include_router is FastAPI's
def test_included_routers_keep_their_prefixes(app: tuple[Deployment, Running]) -> None:
    dep, srv = app
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        assert client.get("/api/v1/items/1").json()["id"] == 1
        assert client.get("/api/admin/items/1").json()["id"] == 1
        endpoints = {e["endpoint"] for e in debug(client, dep)["endpoints"]}
    assert {"GET /api/v1/items/{book_id}", "GET /api/admin/items/{book_id}"} <= endpoints
    assert "GET /items/{book_id}" not in endpoints
