"""``MIDDLEWARE = ["pulsegate.django.PulseGateMiddleware", ...]``

Sync and async capable: under ASGI Django hands it an async ``get_response`` and calls it
as a coroutine (``markcoroutinefunction``), so it adds no thread hop; under WSGI it runs
plainly. Put it first in ``MIDDLEWARE`` so it measures the whole stack.

* The route template is ``request.resolver_match.route`` (``"books/<int:pk>/"`` shown
  as ``/books/<int:pk>/``), read once the view has run; unresolved URLs (404) fold into
  one ``UNMATCHED`` key.
* ``x-ml-*`` headers are set on the response when the view returns (time to headers);
  the request is finished when Django closes the response, i.e. after the server sent
  the last byte of a streaming or file response.
* With the response cache's shared store, a write's finishing invalidation is tried
  once the view returned, before the response goes back to the server (WSGI: blocking,
  in the request's thread; ASGI: awaited on the store's asyncio client): a client
  reading right after its write is never served a page cached before it.
* Exceptions Django turns into a 500 page are recorded by name via the
  ``got_request_exception`` signal.
* The steps are a :class:`~pulsegate.cycle.RequestCycle`'s; this module translates them.
  A rejected request (429 / 503) is answered with a Django ``HttpResponse`` without
  calling the view.
* The dashboard and the Prometheus metrics path (when configured) are answered by the
  framework-free handler (:mod:`pulsegate.export.endpoints`) as an ``HttpResponse``:
  neither measured nor rate limited, and the view never runs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from operator import itemgetter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, get_resolver

from pulsegate.adapter_setup import prepare
from pulsegate.bounded import BoundedLRU
from pulsegate.cycle import CAPTURE, INTERNAL, PROCEED, REJECT, RequestCycle, record_view_error
from pulsegate.django.gate import get_gate
from pulsegate.engine import PulseGate
from pulsegate.export.endpoints import read_body
from pulsegate.http import EnvironHeaders
from pulsegate.records import RequestInfo
from pulsegate.respcache.capture import Finishing

GetResponse = Callable[[HttpRequest], Any]
# RequestInfo(...) without its Python-level __new__: one is made per request
_new_tuple = tuple.__new__

_ROUTES: BoundedLRU[str, str] = BoundedLRU(4096)  # Django route -> template; routes are few
_header_name = itemgetter(0)


def route_of(route: str | None) -> str | None:
    """Django's ``ResolverMatch.route`` as a path template: ``"books/<int:pk>/"`` ->
    ``"/books/<int:pk>/"``; a ``re_path`` regex loses its ``^``/``$`` anchors."""
    if route is None:
        return None
    template = _ROUTES.get(route)
    if template is None:
        template = route[1:] if route.startswith("^") else route
        template = "/" + (template[:-1] if template.endswith("$") else template)
        _ROUTES.put(route, template)
    return template


def resolve_route(request: HttpRequest) -> str | None:
    """The route ``request`` will reach, resolved ahead of the view (for features that
    need it before the app runs, such as per-route rate limits); None on a 404."""
    try:
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
    except Resolver404:
        return None
    return route_of(match.route)


def add_headers(response: HttpResponseBase, headers: list[tuple[str, str]]) -> None:
    """Set pulsegate's headers on a Django response.

    Django's ``response.headers[name] = value`` re-validates and re-encodes both strings
    (two charset conversions, a CR/LF scan): ~1 µs a header. Every header pulsegate
    sends is safe by construction -- lower-case ASCII names, printable ASCII values --
    and checked where it is made: the ``x-ml-*`` values come from digit tables and
    pulsegate's own tokens, the model version is sanitised when it is set, rate-limit
    fields are built from numbers and sanitised policy names, and
    :meth:`~pulsegate.context.RequestContext.add_header` refuses anything else. So the
    pairs go straight into the header store Django reads: ``(name, value)`` under the
    lower-case name, which is the pair itself."""
    store = getattr(response.headers, "_store", None)
    if not isinstance(store, dict):
        for name, value in headers:
            response.headers[name] = value
        return
    # in C, no bytecode a header: (name, value) under the name
    store.update(zip(map(_header_name, headers), headers, strict=True))


def _on_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Sent from inside Django's ``except`` block, so sys.exc_info() is the view's error.
    record_view_error(sys.exc_info()[1])


got_request_exception.connect(_on_exception, dispatch_uid="pulsegate-exception")


class PulseGateMiddleware:
    sync_capable = True
    async_capable = True
    # Slots: with an instance dict (which Django's functools.wraps reads) the attribute
    # reads of the request path stayed unspecialised under Django's handler -- four
    # generic look-ups a request (``dis`` with ``adaptive=True`` after warm-up).
    # ``_is_coroutine`` (3.12: ``_is_coroutine_marker``) is what markcoroutinefunction sets.
    __slots__ = ("_is_coroutine", "_is_coroutine_marker", "async_mode", "gate", "get_response",
                 "internal_endpoints")

    def __init__(self, get_response: GetResponse, gate: PulseGate | None = None) -> None:
        self.get_response = get_response
        # Built (and validated) when Django loads its middleware: at server start-up.
        self.gate = gate if gate is not None else get_gate()
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        #: The dashboard and the Prometheus path (None when both are off: no cost).
        self.internal_endpoints = prepare(self.gate)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        cycle = RequestCycle(self.gate, self.internal_endpoints)
        outcome = cycle.open(self._info(request))
        if outcome is not PROCEED:
            if outcome is CAPTURE:  # the response cache learns the view's response
                response = self._respond(cycle, request, _captured(cycle, request,
                                                                   self.get_response))
                capture = cycle.capture
                if isinstance(capture, Finishing):  # a write: invalidated before it goes out
                    capture.finish()
                return response
            other = self._other(cycle, request)
            return other if other is not None else self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            cycle.error(exc, _route(request))
            raise
        return self._respond(cycle, request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        cycle = RequestCycle(self.gate, self.internal_endpoints)
        # (internal endpoints do no I/O: Django's ASGI handler has buffered the body)
        outcome = await cycle.open_async(self._info(request))
        if outcome is not PROCEED:
            if outcome is CAPTURE:
                try:
                    response = await get_response(request)
                except BaseException as exc:
                    cycle.error(exc, _route(request))
                    raise
                response = self._respond(cycle, request, _learnt(cycle, response))
                capture = cycle.capture
                if isinstance(capture, Finishing):
                    await capture.finish_async()
                return response
            other = self._other(cycle, request)
            return other if other is not None else await get_response(request)
        try:
            response = await get_response(request)
        except BaseException as exc:
            cycle.error(exc, _route(request))
            raise
        return self._respond(cycle, request, response)

    # --- translation only: the decisions are the cycle's ---------------------------------

    def _info(self, request: HttpRequest) -> RequestInfo:
        meta = request.META
        addr = meta.get("REMOTE_ADDR")
        return _new_tuple(RequestInfo, (  # every field, in order: no Python code runs
            request.method or "GET", request.path_info or "/", None,
            addr if isinstance(addr, str) and addr else None,
            EnvironHeaders((meta,)), meta.get("QUERY_STRING", "") or "",
            # WSGI states the scheme in META; ASGIRequest in its scope. Django's own
            # request.scheme also consults settings on every call.
            meta.get("wsgi.url_scheme") or getattr(request, "scope", {}).get("scheme", "http"),
            # for the rate limiter and allocator (per-route rules, before the view runs);
            # otherwise the route is the resolver_match the view leaves
            (lambda: resolve_route(request)) if self.gate.control is not None else None))

    def _other(self, cycle: RequestCycle, request: HttpRequest) -> HttpResponseBase | None:
        """The response for an outcome other than PROCEED; None: call the view as if
        pulsegate were absent."""
        if cycle.outcome is REJECT:
            return self._reject(cycle)
        if cycle.outcome is INTERNAL:
            return self._serve_internal(request)
        return None

    def _serve_internal(self, request: HttpRequest) -> HttpResponse | None:
        """pulsegate's own endpoints (dashboard, metrics) as an ``HttpResponse``."""
        internal = self.internal_endpoints
        if internal is None:
            return None
        meta = request.META
        method = request.method or "GET"
        body = b""
        if method == "POST":
            try:
                body = read_body(meta.get("CONTENT_LENGTH"), request.read)
            except Exception as exc:  # a client gone mid-body, a body already consumed
                self.gate.faults.record("django.internal", exc)
        addr = meta.get("REMOTE_ADDR")
        answer = internal.handle(method, request.path_info or "/", EnvironHeaders((meta,)),
                                 meta.get("QUERY_STRING", "") or "", body,
                                 addr if isinstance(addr, str) and addr else None)
        if answer is None:
            return None
        status, headers, payload = answer
        response = HttpResponse(payload, status=status)
        for name, value in headers:
            response.headers[name] = value
        return response

    def _respond(self, cycle: RequestCycle, request: HttpRequest,
                 response: HttpResponseBase) -> HttpResponseBase:
        try:
            add_headers(response, cycle.response_start(response.status_code, _route(request)))
        except Exception as exc:
            self.gate.faults.record("django.headers", exc)
        _close_with(cycle, response)
        return response

    def _reject(self, cycle: RequestCycle) -> HttpResponse:
        rejection = cycle.rejection
        assert rejection is not None  # (the REJECT outcome)
        try:
            status, headers, body = cycle.rejection_response()
            response = HttpResponse(body, status=status)
            for name, value in headers:
                response.headers[name] = value
        except Exception as exc:
            self.gate.faults.record("django.reject", exc)
            response = HttpResponse(rejection.body, status=rejection.status)
            for name, value in rejection.headers:
                response.headers[name] = value
        _close_with(cycle, response, rejection.status)
        return response


def _captured(cycle: RequestCycle, request: HttpRequest,
              get_response: GetResponse) -> HttpResponseBase:
    """The view's response, handed to the response cache (the CAPTURE outcome)."""
    try:
        response = get_response(request)
    except BaseException as exc:
        cycle.error(exc, _route(request))
        raise
    return _learnt(cycle, response)


def _learnt(cycle: RequestCycle, response: HttpResponseBase) -> HttpResponseBase:
    """Hand ``response`` to the cache: its headers (a cookie set through
    ``response.cookies`` counts as ``Set-Cookie``) and its body unless it streams."""
    headers = list(response.items())
    headers += [("set-cookie", name) for name in response.cookies]
    body = None if response.streaming else response.content  # type: ignore[attr-defined]
    cycle.capture.done(response.status_code, headers, body)
    return response


def _route(request: HttpRequest) -> str | None:
    """The route template the view was reached by (None before routing, or on a 404)."""
    match = getattr(request, "resolver_match", None)
    return None if match is None else route_of(match.route)


def _close_with(cycle: RequestCycle, response: HttpResponseBase,
                status: int | None = None) -> None:
    """Close ``cycle`` when Django closes ``response``: after the server sent it (WSGI:
    the server calls close(); ASGI: the handler does, after the last chunk)."""
    closers = getattr(response, "_resource_closers", None)
    if isinstance(closers, list):
        closers.append(cycle.close if status is None else functools.partial(cycle.close, status))
    else:
        cycle.close(status)
