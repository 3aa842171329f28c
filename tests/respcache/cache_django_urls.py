"""URLs for the response cache's Django tests (module name unique: sys.path is shared)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

#: The shop's state and the fake clock the gate under test reads (set by the test).
items: dict[str, str] = {}
calls: dict[str, int] = {}
clock: Any = None


def _produced(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1
    if clock is not None:
        clock.t += 0.005


def item(request: HttpRequest, pk: str) -> HttpResponse:
    if request.method == "PUT":
        items[pk] = request.body.decode()
        return HttpResponse("ok")
    _produced("item")
    return HttpResponse(f"item {items.get(pk, '?')}", content_type="text/plain")


def me(request: HttpRequest) -> HttpResponse:
    _produced("me")
    who = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get("session") \
        or request.META.get("HTTP_X_SESSION_TOKEN") or request.META.get("REMOTE_USER")
    return HttpResponse(f"hello {who}", content_type="text/plain")


def cookie(request: HttpRequest) -> HttpResponse:
    _produced("cookie")
    response = HttpResponse("with a cookie")
    response.set_cookie("session", "s1")
    return response


async def async_item(request: HttpRequest, pk: str) -> HttpResponse:
    return item(request, pk)


urlpatterns = [
    path("items/<str:pk>/", item),
    path("aitems/<str:pk>/", async_item),
    path("me/", me),
    path("cookie/", cookie),
]
