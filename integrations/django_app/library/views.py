"""Views with and without N+1 problems. Each data view also returns ``statements``:
the number of SQL statements Django itself executed for it (an ``execute_wrapper``),
to compare with pulsegate's ``x-ml-query-count``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import wraps
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from library.models import Author, Book, Review
from pulsegate.django import get_gate

View = Callable[[HttpRequest], dict[str, Any]]

# Per-endpoint detections pulsegate found (for /pulsegate/detections/).
_found: dict[str, list[dict[str, Any]]] = {}


def install_listener() -> None:
    def remember(record: Any, ctx: Any) -> None:
        if ctx.detections:
            _found[record.endpoint] = [d.as_dict() for d in ctx.detections]

    get_gate().listeners.append(remember)


def counted(view: Callable[..., dict[str, Any]]) -> Callable[..., JsonResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        box = [0]

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            box[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            payload = view(request, *args, **kwargs)
        payload["statements"] = box[0]
        return JsonResponse(payload)

    return wrapper


def books_page(request: HttpRequest) -> HttpResponse:
    """An HTML page whose template reads each book's author lazily: the N+1 a real app
    has, named by the template line (library/books_page.html:6)."""
    from django.shortcuts import render

    return render(request, "library/books_page.html", {"books": Book.objects.order_by("id")})


@counted
def authors_nplusone(request: HttpRequest) -> dict[str, Any]:
    """Reverse FK without prefetch: one query per author (fix: prefetch_related)."""
    return {"authors": [{"name": a.name, "books": [b.title for b in a.books.all()]}
                        for a in Author.objects.order_by("id")]}


@counted
def authors_eager(request: HttpRequest) -> dict[str, Any]:
    return {"authors": [{"name": a.name, "books": [b.title for b in a.books.all()]}
                        for a in Author.objects.order_by("id").prefetch_related("books")]}


@counted
def books_nplusone(request: HttpRequest) -> dict[str, Any]:
    """Forward FK without select_related: one query per book."""
    return {"books": [{"title": b.title, "author": b.author.name}
                      for b in Book.objects.order_by("id")]}


@counted
def books_eager(request: HttpRequest) -> dict[str, Any]:
    return {"books": [{"title": b.title, "author": b.author.name}
                      for b in Book.objects.order_by("id").select_related("author")]}


@counted
def book(request: HttpRequest, pk: int) -> dict[str, Any]:
    found = Book.objects.filter(pk=pk).first()
    if found is None:
        raise Http404("no such book")
    return {"id": found.pk, "title": found.title}


@counted
def slow(request: HttpRequest) -> dict[str, Any]:
    n = Review.objects.count()
    time.sleep(0.3)
    return {"reviews": n}


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A streaming body: pulsegate measures it until the server closes the response."""
    chunks = int(request.GET.get("chunks", 5))
    delay = float(request.GET.get("delay_ms", 10)) / 1000

    def body() -> Iterator[bytes]:
        for i in range(chunks):
            time.sleep(delay)
            yield b"chunk %d\n" % i
    return StreamingHttpResponse(body(), content_type="text/plain")


@csrf_exempt
@require_POST
def echo(request: HttpRequest) -> HttpResponse:
    """Echo the request body (chunked uploads included)."""
    return HttpResponse(request.body, content_type="application/octet-stream")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("this endpoint always fails")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def detections(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"by_endpoint": _found, "stats": get_gate().stats(),
                         "endpoints": get_gate().endpoints()})


def report(request: HttpRequest) -> HttpResponse:
    """``manage.py pulsegate report`` for this very process (the server's engine)."""
    out = StringIO()
    call_command("pulsegate", "report", stdout=out)
    return HttpResponse(out.getvalue(), content_type="text/plain; charset=utf-8")
