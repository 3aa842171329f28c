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


api = [path("books/<int:pk>/", book)]

urlpatterns = [
    path("books/<int:pk>/", book),
    path("api/", include(api)),
    path("boom/", boom),
    re_path(r"^legacy/(?P<slug>[a-z]+)/$", legacy),
    path("echo/", echo),
    path("stream/", stream),
    path("async/", async_view),
    path("health/", echo),
    re_path(r"^site/((?:[\w\-]+/)*)$", cms_page),
]
