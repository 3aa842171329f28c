"""URLs for the Django adapter tests (module name unique on purpose: sys.path is shared)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import include, path, re_path

#: Thread idents seen by the async view (to prove there was no thread hop).
seen_threads: list[int] = []


def book(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")


def legacy(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(slug)


def echo(request: HttpRequest) -> HttpResponse:
    body = request.body
    response = HttpResponse(body, content_type="application/octet-stream")
    response["X-Method"] = request.method or ""
    response["X-Len"] = str(len(body))
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        for i in range(3):
            yield b"chunk %d\n" % i
    return StreamingHttpResponse(gen(), content_type="text/plain")


async def async_view(request: HttpRequest) -> JsonResponse:
    seen_threads.append(threading.get_ident())
    await asyncio.sleep(0)
    return JsonResponse({"async": True})


def cms_page(request: HttpRequest, page_path: str) -> HttpResponse:
    """A CMS catch-all: one route serves every page; the page type is known only here
    (Wagtail's ``before_serve_page`` hook is where a real app names it)."""
    import pulsegate

    page_type = page_path.split("/", 1)[0] or "home"
    pulsegate.set_endpoint(f"/cms/{page_type}")
    return HttpResponse(page_type)


def authors(request: HttpRequest) -> JsonResponse:
    """An N+1 in raw SQL: the authors, then each author's books one query at a time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS pg_author (id INTEGER PRIMARY KEY)")
        cursor.execute("CREATE TABLE IF NOT EXISTS pg_book (id INTEGER, author_id INTEGER)")
        cursor.execute("SELECT count(*) FROM pg_author")
        if cursor.fetchone()[0] == 0:
            cursor.executemany("INSERT INTO pg_author (id) VALUES (%s)",
                               [(i,) for i in range(16)])
        cursor.execute("SELECT id FROM pg_author ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
        books = {}
        for author_id in ids:
            cursor.execute("SELECT id FROM pg_book WHERE author_id = %s", [author_id])
            books[author_id] = len(cursor.fetchall())
    return JsonResponse({"authors": len(books)})


api = [path("books/<int:pk>/", book)]

urlpatterns = [
    path("books/<int:pk>/", book),
    path("api/", include(api)),
    path("boom/", boom),
    path("authors/", authors),
    re_path(r"^legacy/(?P<slug>[a-z]+)/$", legacy),
    path("echo/", echo),
    path("stream/", stream),
    path("async/", async_view),
    path("health/", echo),
    re_path(r"^site/((?:[\w\-]+/)*)$", cms_page),
]
