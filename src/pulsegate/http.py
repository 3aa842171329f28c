"""Framework-free HTTP helpers shared by every adapter (ASGI, WSGI, Django).

The adapters only translate: what a rejected request looks like, how a status line is
written and how request headers are read from a WSGI ``environ`` is decided once, here,
so the three adapters cannot drift apart (the sans-IO shape httpx uses to drive its sync
and async clients from one ``auth_flow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pulsegate.context import Rejection, RequestContext

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate

#: Content type of the small plain-text bodies pulsegate itself sends (429 / 503).
REJECTION_CONTENT_TYPE = "text/plain; charset=utf-8"

_REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


def status_line(status: int) -> str:
    """``"429 Too Many Requests"``: the WSGI status string for a code."""
    return f"{status} {_REASONS.get(status, 'Unknown')}"


def parse_status(status: str) -> int:
    """The integer code of a WSGI status line (``"404 Not Found"`` -> 404); 500 when the
    line is malformed, so a broken app still counts as an error rather than crashing us."""
    try:
        code = int(status[:3])  # the common, well-formed case: no split, no list
        if 100 <= code <= 999 and status[3:4] in ("", " "):
            return code
        return int(status.split(None, 1)[0])
    except (ValueError, IndexError, TypeError, AttributeError):
        return 500


def rejection_response(gate: PulseGate, ctx: RequestContext,
                       rejection: Rejection) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, complete header list and body to send for ``rejection``.

    Headers are the rejection's own (``Retry-After``, ``RateLimit``...), then the
    ``x-ml-*`` ones for this request, then ``content-length`` and ``content-type``.
    Calling it records time-to-headers on ``ctx``; the adapter must still call
    ``gate.finish(ctx, status=rejection.status)`` once the body is out.

    The app never ran, so nothing routed the request: the route template is resolved
    here (once, on this exceptional path) so a throttled or shed request is counted
    against its endpoint rather than ``UNMATCHED``."""
    resolver = ctx.info.route_resolver
    if ctx.route is None and resolver is not None:
        try:
            ctx.set_route(resolver())
        except Exception as exc:
            gate.faults.record("route resolver", exc)
    extra = gate.response_headers(ctx, rejection.status)
    headers = [*rejection.headers, *extra,
               ("content-length", str(len(rejection.body))),
               ("content-type", REJECTION_CONTENT_TYPE)]
    return rejection.status, headers, rejection.body


class EnvironHeaders(tuple[Mapping[str, Any]]):
    """Lower-case, dash-separated read access to the request headers of a WSGI
    ``environ`` (``CONTENT_TYPE``, ``CONTENT_LENGTH`` and ``HTTP_*`` keys). Nothing is
    decoded until something asks.

    Made per request, and rarely asked: a one-item tuple, so making it runs no Python
    code (``EnvironHeaders((environ,))``)."""

    __slots__ = ()

    def get(self, name: str, /) -> str | None:
        return environ_header(self[0], name)


def environ_header(environ: Mapping[str, Any], name: str) -> str | None:
    """The request header ``name`` (any case) of a WSGI environ, or None."""
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    value = environ.get(key)
    return value if isinstance(value, str) else None
