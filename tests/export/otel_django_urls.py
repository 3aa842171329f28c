"""URLs of the Django + OpenTelemetry export test."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from pulsegate.context import query_sink
from pulsegate.queries.events import QueryEvent


def book(request: HttpRequest, pk: int) -> HttpResponse:
    sink = query_sink.get()
    if sink is not None and request.GET.get("n1"):
        for i in range(6):
            sink.add_query(QueryEvent(f"SELECT * FROM review WHERE book_id = {i}", 0.1,
                                      params_hash=i, call_site="views.py:9 in book"))
    return HttpResponse(f"book {pk}")


urlpatterns = [path("books/<int:pk>/", book)]
