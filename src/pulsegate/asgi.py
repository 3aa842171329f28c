"""Pure ASGI middleware for Starlette, FastAPI and any ASGI application.

    app.add_middleware(PulseGateMiddleware, gate=gate)     # or config keywords
    app = PulseGateMiddleware(app, gate=gate)              # any ASGI app

Only ``http`` scopes are measured; ``lifespan`` and ``websocket`` pass straight through
(a completed lifespan shutdown also closes the gate, which takes the final state
snapshot), and so does every path in ``exclude_paths`` (after one prefix check). The ``x-ml-*``
headers are added to ``http.response.start``; the request is finished (and its endpoint
model updated) after the last body chunk has been sent. The steps are a
:class:`~pulsegate.cycle.RequestCycle`'s; this module translates ASGI messages into them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pulsegate.adapter_setup import gate_for, prepare
from pulsegate.bounded import BoundedLRU
from pulsegate.config import Config
from pulsegate.cycle import CAPTURE, INTERNAL, PROCEED, REJECT, RequestCycle
from pulsegate.engine import PulseGate
from pulsegate.export.endpoints import serve_asgi
from pulsegate.http import ASGIHeaders
from pulsegate.records import RequestInfo

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ENCODED_CACHE = 4096
_FULL = 2  # starlette.routing.Match.FULL, compared by value so starlette stays optional
_PARTIAL = 1
# RequestInfo(...) without its Python-level __new__: one is made per request
_new_tuple = tuple.__new__


def match_route(routes: Any, scope: Scope, prefix: str = "") -> str | None:
    """The template of the route ``scope`` would reach, walking mounts; None if none.

    Uses Starlette's own ``route.matches`` so path converters and hosts behave exactly
    as the router does."""
    partial: str | None = None
    for route in routes or ():
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        code = getattr(match, "value", match)
        if code == 0:
            continue
        path = getattr(route, "path", "") or ""
        if hasattr(route, "endpoint"):
            template = prefix + path
        elif hasattr(route, "effective_route_contexts"):  # FastAPI >= 0.165 include_router
            included = _included_route(route, scope, prefix)
            if included is None:
                continue
            template = included
        else:  # a Mount or Host: descend
            inner = getattr(route, "routes", None)
            template = None
            if inner:
                template = match_route(inner, {**scope, **child}, prefix + path)
            if template is None:
                template = prefix + path + "/{path:path}"
        if code == _FULL:
            return template
        if partial is None:
            partial = template
    return partial


def _included_route(router: Any, scope: Scope, prefix: str) -> str | None:
    """The full template (router prefixes included) of the route an included FastAPI
    router would reach: its effective routes carry their whole path and pattern."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    method = scope.get("method")
    for ctx in router.effective_route_contexts():
        regex, methods = getattr(ctx, "path_regex", None), getattr(ctx, "methods", None)
        if regex is not None and regex.match(path) and (not methods or method in methods):
            return prefix + str(ctx.path)
    return None


def _effective_path(scope: Scope, route: Any) -> str | None:
    """FastAPI >= 0.165 keeps included routers nested: ``scope["route"]`` is the inner
    route (``/items/``) and the prefixed one (``/api/v1/items/``) is its effective
    context, left in ``scope["fastapi"]``."""
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, dict):
        return None
    ctx = fastapi_scope.get("effective_route_context")
    if ctx is None or getattr(ctx, "original_route", None) is not route:
        return None
    path = getattr(ctx, "path", None)
    return path if isinstance(path, str) else None


def route_template(scope: Scope, root_path: str, app: Any = None) -> str | None:
    """Read the route template after the app routed the request.

    FastAPI and Starlette leave the matched route in ``scope["route"]``; its ``path`` (or
    that of its FastAPI effective context, with the routers' prefixes) is the template
    unless a Mount changed ``root_path`` on the way, in which case the
    prefix is recovered by matching the top-level ``app``'s routes once (a mounted
    sub-application replaces ``scope["app"]``, so the caller passes the one it saw
    first)."""
    route = scope.get("route")
    if route is not None and scope.get("root_path", "") == root_path:
        path = _effective_path(scope, route) or getattr(route, "path", None)
        if isinstance(path, str) and hasattr(route, "endpoint"):
            return path
    routes = getattr(app if app is not None else scope.get("app"), "routes", None)
    if routes is None:
        return None
    probe = dict(scope)
    probe["root_path"] = root_path
    probe.pop("path_params", None)
    return match_route(routes, probe)


class PulseGateMiddleware:
    """Measure, score and (when configured) control every HTTP request."""

    def __init__(self, app: ASGIApp, gate: PulseGate | None = None,
                 config: Config | None = None, **options: Any) -> None:
        self.app = app
        self.gate = gate = gate_for(gate, config, options)
        # Encoded header pairs: most values repeat ("none", "0", "0.000", a version), so
        # the bytes are made once; the oldest go first when varying values fill it.
        self._encoded: BoundedLRU[tuple[str, str], tuple[bytes, bytes]] = \
            BoundedLRU(_ENCODED_CACHE)
        #: The dashboard and the Prometheus path (None when both are off: no cost).
        self.internal_endpoints = prepare(gate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
            else:
                await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        # Starlette sets scope["app"] before its middleware stack; a Starlette app wrapped
        # directly (PulseGateMiddleware(app)) has not run yet, so use the wrapped app.
        top_app = scope.get("app") or self.app
        client = scope.get("client")
        query = scope.get("query_string")
        info = _new_tuple(RequestInfo, (  # every field, in order: no Python code runs
            scope.get("method", "GET"), scope.get("path", ""), None,
            client[0] if client else None, ASGIHeaders(scope.get("headers")),
            query.decode("latin-1") if query else "", scope.get("scheme", "http"),
            lambda: route_template(scope, root_path, top_app)))
        cycle = RequestCycle(self.gate, self.internal_endpoints)
        outcome = await cycle.open_async(info)
        if outcome is PROCEED:
            await self._proceed(cycle, scope, receive, send)
        elif outcome is REJECT:
            await self._reject(cycle, send)
        elif outcome is CAPTURE:  # the response cache learns the app's response
            await self._proceed(cycle, scope, receive, cycle.capture.asgi_send(send))
        elif outcome is not INTERNAL or not await self._serve_internal(scope, receive, send):
            await self.app(scope, receive, send)

    async def _serve_internal(self, scope: Scope, receive: Receive, send: Send) -> bool:
        endpoints = self.internal_endpoints
        return endpoints is not None and await serve_asgi(endpoints, scope, receive, send)

    async def _proceed(self, cycle: RequestCycle, scope: Scope, receive: Receive,
                       send: Send) -> None:
        """Call the app, adding the headers to its response start and closing the cycle
        after its last body chunk."""
        encoded = self._encoded

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                extra = cycle.response_start(message["status"])
                if extra:
                    headers = list(message.get("headers") or ())
                    for pair in extra:
                        raw = encoded.get(pair)
                        if raw is None:
                            raw = (pair[0].encode("latin-1"), pair[1].encode("latin-1"))
                            encoded.put(pair, raw)
                        headers.append(raw)
                    message["headers"] = headers
                await send(message)
            elif kind == "http.response.body" and not message.get("more_body", False):
                await send(message)
                cycle.close()
            else:
                await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            cycle.error(exc)
            raise
        # Without a final body chunk (client gone, or no response): closed as it stands.
        cycle.close()

    def _lifespan_send(self, send: Send) -> Send:
        """Pass lifespan messages through unchanged; on a completed shutdown, first close
        the gate (final state snapshot, pending alerts) so a restart starts warm."""
        gate = self.gate

        async def lifespan_send(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                gate.close()
            await send(message)

        return lifespan_send

    async def _reject(self, cycle: RequestCycle, send: Send) -> None:
        try:
            status, pairs, body = cycle.rejection_response()
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
            await send({"type": "http.response.start", "status": status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            cycle.close(cycle.rejection.status)  # type: ignore[union-attr]
