"""URLs for the Django read-after-write tests on the shared store (module name unique:
sys.path is shared). A write's view first lets a concurrent reader through (``reader``,
set by the test: it caches the page as it is before the write), then changes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

items: dict[str, str] = {}
clock: Any = None
reader: Callable[[str], None] | None = None
areader: Callable[[str], Awaitable[None]] | None = None


def _page(pk: str) -> HttpResponse:
    if clock is not None:
        clock.t += 0.005
    return HttpResponse(f"item {items.get(pk, '?')}", content_type="text/plain")


def item(request: HttpRequest, pk: str) -> HttpResponse:
    if request.method == "PUT":
        if reader is not None:
            reader(pk)
        items[pk] = request.body.decode()
        return HttpResponse("ok")
    return _page(pk)


async def async_item(request: HttpRequest, pk: str) -> HttpResponse:
    if request.method == "PUT":
        if areader is not None:
            await areader(pk)
        items[pk] = request.body.decode()
        return HttpResponse("ok")
    return _page(pk)


urlpatterns = [
    path("items/<str:pk>/", item),
    path("aitems/<str:pk>/", async_item),
]
