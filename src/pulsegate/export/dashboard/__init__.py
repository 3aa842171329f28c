"""The dashboard: one self-contained page (inline SVG charts, no CDN) and the JSON API
behind it, served by the middleware under ``dashboard_path``.

The HTTP handling is framework-free -- :meth:`DashboardHandler.handle` takes the method,
path, headers, query string, body and peer address and returns ``(status, headers,
body)`` -- so the ASGI middleware, WSGI and Django all serve it the same way (see
:mod:`pulsegate.export.endpoints`).

Access (see ``docs/operations.md``, "Dashboard security"):

* off by default; on, it needs ``dashboard_token`` or ``dashboard_allow_loopback``,
  otherwise it is not served at all (the application answers, usually 404);
* with a token: ``Authorization: Bearer <token>`` on every call; the page alone also
  accepts ``?token=`` (for a first visit from a browser), then removes it from the
  address bar and sends the header on its JSON calls. The comparison is constant time
  (``hmac.compare_digest``). A wrong or missing token gets 401;
* ``dashboard_allow_loopback`` admits a loopback peer without a token -- unless the
  request carries a proxy's header (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``,
  ``Via``, ...), i.e. came through a proxy, where the peer address says nothing about
  the client, or its ``Host`` does not name ``localhost`` or a loopback address. The
  Host rule stops DNS rebinding: a page on ``evil.example`` whose name is re-pointed at
  127.0.0.1 reaches the loopback port from the user's own browser, but its requests
  still say ``Host: evil.example``;
* a state-changing request (anything but GET/HEAD) admitted as loopback also needs an
  ``Origin`` naming the same loopback host (the dashboard page's own fetch sends one; a
  cross-site page cannot); with the token it is refused only when an ``Origin`` is sent
  that does not match ``Host``;
* the feedback POST needs ``Content-Type: application/json``: a cross-site form cannot
  send it without a CORS preflight;
* responses carry ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``,
  ``X-Content-Type-Options: nosniff`` and, for the page, a Content-Security-Policy
  admitting only its own nonce-tagged inline script and style.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from pulsegate.export.dashboard.api import feedback, findings, series_payload, summary
from pulsegate.export.series import SeriesStore
from pulsegate.records import HeaderGetter

if TYPE_CHECKING:
    from pulsegate.plugins import Host

Response = tuple[int, list[tuple[str, str]], bytes]

logger = logging.getLogger("pulsegate")

MAX_BODY = 16 * 1024
#: Headers only a proxy writes: any of them means the peer is a proxy, not the browser.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host",
                  "x-forwarded-proto", "via", "cf-connecting-ip", "true-client-ip")
_COMMON = [("cache-control", "no-store"), ("referrer-policy", "no-referrer"),
           ("x-content-type-options", "nosniff")]


def is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_name(authority: str | None) -> str | None:
    """The host of a ``Host`` header or an origin's authority (``name[:port]``,
    ``[v6]:port``), lower-cased, without the port; None when it is malformed.

    >>> host_name("LocalHost:8000"), host_name("[::1]:80"), host_name("a:b:c")
    ('localhost', '::1', None)
    """
    if not authority:
        return None
    a = authority.strip().lower()
    if a.startswith("["):
        name, bracket, port = a[1:].partition("]")
        if not bracket:
            return None
    else:
        name, _, port = a.partition(":")
        port = ":" + port if _ else ""
    if port and not (port[0] == ":" and 1 < len(port) <= 6 and port[1:].isdigit()):
        return None
    return name


def is_loopback_host(authority: str | None) -> bool:
    """Does a ``Host`` (or origin authority) name this machine: ``localhost`` or a
    loopback address, with any port?"""
    name = host_name(authority)
    return name is not None and (name.rstrip(".") == "localhost" or is_loopback(name))


def _same_loopback_origin(headers: HeaderGetter) -> bool:
    """``Origin`` is ``http(s)://<the request's own Host>`` and that host is loopback."""
    origin, host = headers.get("origin"), headers.get("host")
    if not origin or not host:
        return False
    scheme, sep, authority = origin.partition("://")
    return (bool(sep) and scheme.lower() in ("http", "https")
            and authority.rstrip("/").lower() == host.strip().lower()
            and is_loopback_host(authority))


def _json(status: int, payload: Any, extra: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, default=str, allow_nan=False).encode()
    return status, [("content-type", "application/json"), ("content-length", str(len(body))),
                    *_COMMON, *(extra or [])], body


def _safe(value: Any) -> Any:
    """JSON has no NaN/inf: replace them (a model with no data yet) by None."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


class DashboardHandler:
    """Routes ``<path>/``, ``<path>/api/summary``, ``<path>/api/findings`` (the ranked
    query findings alone), ``<path>/api/series`` and ``<path>/api/feedback``; everything
    else under ``<path>`` is 404."""

    def __init__(self, gate: Host, series: SeriesStore) -> None:
        c = gate.config.export
        self.gate = gate
        self.series = series
        self.base = c.dashboard_path.rstrip("/")
        self.token: bytes | None = c.dashboard_token.encode() if c.dashboard_token else None
        self.allow_loopback = bool(c.dashboard_allow_loopback)
        self._page: str | None = None

    def matches(self, path: str) -> bool:
        base = self.base
        return path == base or path.startswith(base + "/")

    # --- access -----------------------------------------------------------------------

    def _authorized(self, headers: HeaderGetter, query_token: str | None,
                    peer: str | None) -> str | int:
        """``"token"`` or ``"loopback"`` (how the caller got in), else the status to
        answer (401 or 404)."""
        token = self.token
        if token is not None:
            given: str | None = None
            auth = headers.get("authorization")
            if auth and auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
            elif query_token is not None:
                given = query_token
            if given is not None and hmac.compare_digest(given.encode(), token):
                return "token"
        if (self.allow_loopback and is_loopback(peer)
                and is_loopback_host(headers.get("host"))
                and not any(headers.get(h) for h in _PROXY_HEADERS)):
            return "loopback"
        # No token configured: nothing but loopback could get in, so to anyone else the
        # dashboard does not exist.
        return 401 if token is not None else 404

    # --- the handler ------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: HeaderGetter, query: str,
               body: bytes, peer: str | None) -> Response | None:
        """Answer a request for a dashboard path; None if ``path`` is not one."""
        if not self.matches(path):
            return None
        response = self._handle(method, path, headers, query, body, peer)
        if method == "HEAD":
            return response[0], response[1], b""
        return response

    def _handle(self, method: str, path: str, headers: HeaderGetter, query: str,
                body: bytes, peer: str | None) -> Response:
        sub = path[len(self.base):] or "/"
        params = parse_qs(query, keep_blank_values=True) if query else {}
        is_page = sub == "/"
        qtoken = params.get("token", [None])[-1] if is_page else None
        via = self._authorized(headers, qtoken, peer)
        if via == 404:
            return _json(404, {"error": "not found"})
        if via == 401:
            if is_page and method in ("GET", "HEAD"):
                return self._login_response(method)
            return _json(401, {"error": "a valid dashboard token is required"},
                         [("www-authenticate", 'Bearer realm="pulsegate"')])
        if via == "loopback" and method not in ("GET", "HEAD") \
                and not _same_loopback_origin(headers):
            return _json(403, {"error": "a state-changing request needs the token or a "
                                        "same-origin loopback Origin"})
        try:
            if is_page:
                if method not in ("GET", "HEAD"):
                    return _json(405, {"error": "method not allowed"}, [("allow", "GET, HEAD")])
                return self._page_response(method)
            if sub == "/api/summary" and method in ("GET", "HEAD"):
                return _json(200, _safe(summary(self.gate, self.series)))
            if sub == "/api/findings" and method in ("GET", "HEAD"):
                return _json(200, _safe({"findings": findings(self.gate)}))
            if sub == "/api/series" and method in ("GET", "HEAD"):
                endpoint = params.get("endpoint", [""])[-1]
                return _json(200, _safe(series_payload(self.gate, self.series, endpoint)))
            if sub == "/api/feedback":
                if method != "POST":
                    return _json(405, {"error": "method not allowed"}, [("allow", "POST")])
                return self._feedback(headers, body)
            return _json(404, {"error": "not found"})
        except Exception as exc:
            self.gate.faults.record("dashboard", exc)
            return _json(500, {"error": "internal error (counted in stats)"})

    def _feedback(self, headers: HeaderGetter, body: bytes) -> Response:
        ctype = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return _json(415, {"error": "Content-Type must be application/json"})
        origin = headers.get("origin")
        host = headers.get("host")
        if origin and host and origin.split("://", 1)[-1].rstrip("/") != host:
            return _json(403, {"error": "cross-origin feedback refused"})
        if len(body) > MAX_BODY:
            return _json(413, {"error": "body too large"})
        try:
            data = json.loads(body or b"{}")
        except (ValueError, RecursionError):  # (nested past the parser's depth)
            return _json(400, {"error": "body is not JSON"})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or \
                not isinstance(data.get("correct"), bool):
            return _json(400, {"error": 'expected {"id": "<detection id>", "correct": true|false}'})
        status, payload = feedback(self.gate, self.series, data["id"], data["correct"])
        return _json(status, payload)

    def _page_response(self, method: str) -> Response:
        if self._page is None:
            self._page = resources.files(__package__).joinpath("page.html").read_text("utf-8")
        nonce = secrets.token_urlsafe(16)
        html = (self._page.replace("{{NONCE}}", nonce)
                .replace("{{BASE}}", json.dumps(self.base + "/")))
        body = html.encode()
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
        headers = [("content-type", "text/html; charset=utf-8"),
                   ("content-length", str(len(body))), *_COMMON,
                   ("content-security-policy", csp), ("x-frame-options", "DENY")]
        return 200, headers, b"" if method == "HEAD" else body


    def _login_response(self, method: str) -> Response:
        """The page's 401: a token form (a plain GET to ``?token=``). A tab that already
        passed the token once (a reload) re-sends it from sessionStorage, forgetting
        it first so a stale token cannot loop. Nothing of the dashboard is in it."""
        nonce = secrets.token_urlsafe(16)
        html = _LOGIN.replace("{{NONCE}}", nonce)
        body = html.encode()
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
               "img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        headers = [("content-type", "text/html; charset=utf-8"),
                   ("content-length", str(len(body))), *_COMMON,
                   ("content-security-policy", csp), ("x-frame-options", "DENY"),
                   ("www-authenticate", 'Bearer realm="pulsegate"')]
        return 401, headers, b"" if method == "HEAD" else body


_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,"><title>pulsegate: token required</title>
<style nonce="{{NONCE}}">body{font:15px system-ui,sans-serif;background:#0f1419;color:#d7dde4;
display:grid;place-items:center;height:90vh}form{display:grid;gap:8px}
input,button{font:inherit;padding:6px 8px}</style></head>
<body><form method="get" autocomplete="off"><h1>pulsegate</h1>
<p>a valid dashboard token is required</p>
<input type="password" name="token" aria-label="dashboard token" placeholder="dashboard token"
required><button type="submit">open</button></form>
<script nonce="{{NONCE}}">
(function () {
  var t = sessionStorage.getItem("pulsegate-token");
  if (t) {
    sessionStorage.removeItem("pulsegate-token");
    location.replace(location.pathname + "?token=" + encodeURIComponent(t));
  }
})();
</script></body></html>
"""


class SeriesSlot(Protocol):
    """Where the gate's series store is kept (``pulsegate.export.ExportState``)."""

    series: SeriesStore | None


def install(gate: Host, st: SeriesSlot) -> DashboardHandler | None:
    """Attach the dashboard (its series listener and handler) to ``gate``, keeping the
    series store in ``st``; None, with a warning, when neither a token nor loopback
    access is configured."""
    c = gate.config.export
    if c.dashboard_path.rstrip("/") == "":
        logger.warning("pulsegate: dashboard_path='/' would hide the whole application; "
                       "the dashboard is not served")
        return None
    if not c.dashboard_token and not c.dashboard_allow_loopback:
        logger.warning("pulsegate: dashboard=True but neither dashboard_token nor "
                       "dashboard_allow_loopback is set; the dashboard is not served")
        return None
    if st.series is None:
        st.series = SeriesStore(gate, points=c.dashboard_points)
        gate.listeners.append(st.series)
        gate.unit_listeners.append(st.series)  # jobs, queue waits... beside the endpoints
        # persisted with the gate's state (state_dir / Redis): a restart shows it again
        gate.plugs.add_state("dashboard", st.series)
    return DashboardHandler(gate, st.series)
