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
* Exceptions Django turns into a 500 page are recorded by name via the
  ``got_request_exception`` signal.
* A :class:`~pulsegate.context.Rejection` from the engine (429 / 503) is returned as a
  Django ``HttpResponse`` without calling the view.
* The dashboard and the Prometheus metrics path (when configured) are answered by the
  framework-free handler (:mod:`pulsegate.export.endpoints`) before ``gate.begin``, as an
  ``HttpResponse``: neither measured nor rate limited, and the view never runs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, get_resolver

from pulsegate.autoinstrument import instrument_orms
from pulsegate.bounded import BoundedLRU
from pulsegate.context import Rejection, RequestContext, current
from pulsegate.django.gate import get_gate
from pulsegate.engine import PulseGate
from pulsegate.export.endpoints import internal_endpoints, read_body
from pulsegate.http import EnvironHeaders, rejection_response
from pulsegate.records import RequestInfo

GetResponse = Callable[[HttpRequest], Any]
# RequestInfo(...) without its Python-level __new__: one is made per request
_new_tuple = tuple.__new__

_ROUTES: BoundedLRU[str, str] = BoundedLRU(4096)  # Django route -> template; routes are few


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
    for pair in headers:
        store[pair[0]] = pair


def _on_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Sent from inside Django's ``except`` block, so sys.exc_info() is the view's error.
    ctx = current()
    exc = sys.exc_info()[1]
    if ctx is not None and exc is not None:
        ctx.error = type(exc).__name__


got_request_exception.connect(_on_exception, dispatch_uid="pulsegate-exception")


class PulseGateMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse, gate: PulseGate | None = None) -> None:
        self.get_response = get_response
        # Built (and validated) when Django loads its middleware: at server start-up.
        self.gate = gate if gate is not None else get_gate()
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        # The dashboard and the Prometheus path (None when both are off: no cost).
        self._internal = internal_endpoints(self.gate)
        # SQLAlchemy engines, existing and future (option instrument_sqlalchemy).
        instrument_orms(self.gate)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        if self._internal is not None:
            internal = self._serve_internal(request)
            if internal is not None:
                return internal
        ctx = self._begin(request)
        if ctx is None:
            return self.get_response(request)
        if self.gate.control is not None:
            rejection = self.gate.admit(ctx)
            if rejection is not None:
                return self._reject(ctx, request, rejection)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            self._fail(ctx, request, exc)
            raise
        return self._respond(ctx, request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if self._internal is not None:
            # No I/O (the body is already buffered by Django's ASGI handler): no thread hop.
            internal = self._serve_internal(request)
            if internal is not None:
                return internal
        ctx = self._begin(request)
        if ctx is None:
            return await get_response(request)
        if self.gate.control is not None:  # no coroutine to await when control is off
            rejection = await self.gate.admit_async(ctx)
            if rejection is not None:
                return self._reject(ctx, request, rejection)
        try:
            response = await get_response(request)
        except BaseException as exc:
            self._fail(ctx, request, exc)
            raise
        return self._respond(ctx, request, response)

    # --- translation only: the decisions are the engine's --------------------------------

    def _serve_internal(self, request: HttpRequest) -> HttpResponse | None:
        """pulsegate's own endpoints (dashboard, metrics) as an ``HttpResponse``; None
        when ``request`` is not for one of them (then nothing of it was read)."""
        internal = self._internal
        path = request.path_info or "/"
        if internal is None or not internal.matches(path):
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
        answer = internal.handle(method, path, EnvironHeaders((meta,)),
                                 meta.get("QUERY_STRING", "") or "", body,
                                 addr if isinstance(addr, str) and addr else None)
        if answer is None:
            return None
        status, headers, payload = answer
        response = HttpResponse(payload, status=status)
        for name, value in headers:
            response.headers[name] = value
        return response

    def _begin(self, request: HttpRequest) -> RequestContext | None:
        gate = self.gate
        if not gate._enabled:
            return None
        path = request.path_info or "/"
        if path.startswith(gate._exclude_stems) and gate.is_excluded(path):
            gate.counters["excluded"] += 1
            return None
        meta = request.META
        addr = meta.get("REMOTE_ADDR")
        info = _new_tuple(RequestInfo, (  # every field, in order: no Python code runs
            request.method or "GET", path, None, addr if isinstance(addr, str) and addr else None,
            EnvironHeaders((meta,)), meta.get("QUERY_STRING", "") or "",
            # WSGI states the scheme in META; ASGIRequest in its scope. Django's own
            # request.scheme also consults settings on every call.
            meta.get("wsgi.url_scheme") or getattr(request, "scope", {}).get("scheme", "http"),
            # asked up front only by the rate limiter and allocator (per-route rules)
            (lambda: resolve_route(request)) if gate.control is not None else None))
        return gate.start(info)

    def _set_route(self, ctx: RequestContext, request: HttpRequest) -> None:
        if ctx.route is not None:
            return
        try:
            match = getattr(request, "resolver_match", None)
            ctx.set_route(route_of(match.route) if match is not None else None)
        except Exception as exc:
            self.gate.faults.record("django.route", exc)

    def _respond(self, ctx: RequestContext, request: HttpRequest,
                 response: HttpResponseBase) -> HttpResponseBase:
        gate = self.gate
        if ctx.route is None:
            try:
                match = request.resolver_match
                if match is not None:
                    ctx.route = route_of(match.route)
            except Exception as exc:
                gate.faults.record("django.route", exc)
        try:
            add_headers(response, gate.response_headers(ctx, response.status_code))
        except Exception as exc:
            gate.faults.record("django.headers", exc)
        self._finish_on_close(ctx, response)
        return response

    def _finish_on_close(self, ctx: RequestContext, response: HttpResponseBase) -> None:
        # Django closes the response after the server has sent it (WSGI: the server calls
        # close(); ASGI: the handler does after the last chunk), running these closers.
        closers = getattr(response, "_resource_closers", None)
        if type(closers) is list or isinstance(closers, list):
            closers.append(functools.partial(self.gate.finish, ctx, None, None, False))
        else:
            self.gate.finish(ctx)

    def _fail(self, ctx: RequestContext, request: HttpRequest, exc: BaseException) -> None:
        self._set_route(ctx, request)
        self.gate.finish(ctx, error=exc)

    def _reject(self, ctx: RequestContext, request: HttpRequest,
                rejection: Rejection) -> HttpResponse:
        gate = self.gate
        try:
            if ctx.route is None:
                ctx.set_route(resolve_route(request))
            status, headers, body = rejection_response(gate, ctx, rejection)
            response = HttpResponse(body, status=status)
            for name, value in headers:
                response.headers[name] = value
        except Exception as exc:
            gate.faults.record("django.reject", exc)
            response = HttpResponse(rejection.body, status=rejection.status)
            for name, value in rejection.headers:
                response.headers[name] = value
        self._finish_on_close(ctx, response)
        ctx.status = rejection.status
        return response
