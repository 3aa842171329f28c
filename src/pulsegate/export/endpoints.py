"""pulsegate's own HTTP endpoints (the dashboard, the Prometheus metrics), framework-free.

:func:`internal_endpoints` returns None when every endpoint is off, so an adapter pays
nothing; otherwise one :meth:`InternalEndpoints.matches` prefix test per request, made
by :class:`pulsegate.cycle.RequestCycle` before anything is measured, so these requests
are neither measured nor rate limited: its outcome is ``INTERNAL``.

Adapters::

    endpoints = internal_endpoints(gate)             # once, at start-up
    cycle = RequestCycle(gate, endpoints)            # per request
    if cycle.open(info) is INTERNAL:                 # (ASGI: await cycle.open_async)
        # ASGI
        if await serve_asgi(endpoints, scope, receive, send):
            return
        # WSGI (PulseGateWSGIMiddleware, hence Flask)
        out = serve_wsgi(endpoints, environ, start_response)
        if out is not None:
            return out
        # anything else (the Django middleware, sync and async)
        response = endpoints.handle(method, path, headers, query, body, peer)
        # -> None (not ours) or (status, [(name, value), ...], body)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from pulsegate.http import ASGIHeaders, EnvironHeaders, status_line
from pulsegate.records import HeaderGetter

if TYPE_CHECKING:
    from pulsegate.export.dashboard import DashboardHandler, Response
    from pulsegate.export.prometheus import PrometheusExporter
    from pulsegate.plugins import Host

#: Most bytes of a request body the endpoints read (the handlers refuse more).
MAX_READ = 64 * 1024


class InternalEndpoints:
    """Routes a request to the dashboard or the metrics exposition."""

    def __init__(self, gate: Host, dashboard: DashboardHandler | None,
                 prometheus: PrometheusExporter | None, prometheus_path: str | None) -> None:
        self.gate = gate
        self.dashboard = dashboard
        self.prometheus = prometheus if prometheus_path else None
        self.prometheus_path = prometheus_path
        prefixes: list[str] = []
        if dashboard is not None:
            prefixes.append(dashboard.base)
        if self.prometheus is not None and prometheus_path:
            prefixes.append(prometheus_path)
        self._prefixes = tuple(prefixes)

    def matches(self, path: str) -> bool:
        """Whether ``path`` is ours: a prefix test first (one per request), then the
        exact rule, so a request that is not ours is never touched (its body unread)."""
        if not path.startswith(self._prefixes):
            return False
        if self.prometheus is not None and path == self.prometheus_path:
            return True
        return self.dashboard is not None and self.dashboard.matches(path)

    def handle(self, method: str, path: str, headers: HeaderGetter, query: str,
               body: bytes, peer: str | None) -> Response | None:
        if self.prometheus is not None and path == self.prometheus_path:
            if method not in ("GET", "HEAD"):
                return 405, [("allow", "GET, HEAD"), ("content-length", "0")], b""
            try:
                ctype, payload = self.prometheus.render()
            except Exception as exc:
                self.gate.faults.record("prometheus render", exc)
                return 500, [("content-length", "0")], b""
            return 200, [("content-type", ctype), ("content-length", str(len(payload))),
                         ("cache-control", "no-store")], b"" if method == "HEAD" else payload
        if self.dashboard is not None:
            return self.dashboard.handle(method, path, headers, query, body, peer)
        return None


def internal_endpoints(gate: Host) -> InternalEndpoints | None:
    """The endpoints ``gate`` serves, or None when it serves none."""
    from pulsegate.export.parts import state

    st = state(gate)
    c = gate.config
    prom_path = getattr(c, "prometheus_path", None)
    if st.dashboard is None and (st.prometheus is None or not prom_path):
        return None
    return InternalEndpoints(gate, st.dashboard, st.prometheus, prom_path)


async def serve_asgi(endpoints: InternalEndpoints, scope: MutableMapping[str, Any],
                     receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
                     send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> bool:
    """Answer an ASGI ``http`` request if it is ours; False (nothing sent, body unread)
    when it is not."""
    path = scope.get("path", "")
    method = scope.get("method", "GET")
    headers = ASGIHeaders(scope.get("headers"))
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    peer = client[0] if client else None
    body = b""
    if method == "POST":
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return True  # client gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_READ:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks) if size <= MAX_READ else b"x" * (MAX_READ + 1)
    response = endpoints.handle(method, path, headers, query, body, peer)
    if response is None:
        return False
    status, pairs, payload = response
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]})
    await send({"type": "http.response.body", "body": payload})
    return True


def read_body(content_length: str | None, read: Callable[[int], bytes]) -> bytes:
    """A POST body for :meth:`InternalEndpoints.handle`, read through ``read(n)`` (a WSGI
    ``wsgi.input``, Django's ``request.read``): at most ``MAX_READ + 1`` bytes, so an
    oversized body is seen as such (413) without being read whole; b"" without a
    positive ``Content-Length``."""
    try:
        length = int(content_length or 0)
    except ValueError:
        return b""
    if length <= 0:
        return b""
    return read(min(length, MAX_READ + 1))


def serve_wsgi(endpoints: InternalEndpoints, environ: Mapping[str, Any],
               start_response: Callable[..., Any]) -> list[bytes] | None:
    """Answer a WSGI request if it is ours; None when it is not (body unread)."""
    path = environ.get("PATH_INFO", "") or ""
    method = environ.get("REQUEST_METHOD", "GET")
    if not endpoints.matches(path):
        return None
    body = b""
    if method == "POST":
        stream = environ.get("wsgi.input")
        if stream is not None:
            body = read_body(environ.get("CONTENT_LENGTH"), stream.read)
    response = endpoints.handle(method, path, EnvironHeaders((environ,)),
                                environ.get("QUERY_STRING", "") or "", body,
                                environ.get("REMOTE_ADDR"))
    if response is None:
        return None
    status, pairs, payload = response
    start_response(status_line(status), pairs)
    return [payload]

