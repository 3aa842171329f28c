"""An outbound URL as it is reported: its upstream (``scheme://host[:port]``) and a path
template -- never the query string, the fragment or the user information.

* the host is lower-cased, a default port (80 for http, 443 for https) dropped, an IPv6
  address kept in brackets;
* the path's segments that are ids are folded to ``{id}``: all digits, a UUID, eight or
  more hexadecimal characters with a digit, or twenty or more characters of a token
  alphabet (base64, random ids); the path is cut after :data:`MAX_SEGMENTS` segments;
* a route template the caller names (:func:`pulsegate.outbound.route`) replaces the
  folded path.

>>> upstream_of("https://user:secret@API.example.com:443/v1/users/42/orders?token=abc#x")
('https://api.example.com', '/v1/users/{id}/orders')
>>> upstream_of("http://10.0.0.5:8080/items/550e8400-e29b-41d4-a716-446655440000")
('http://10.0.0.5:8080', '/items/{id}')
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["MAX_SEGMENTS", "fold_path", "upstream_label", "upstream_of"]

MAX_SEGMENTS = 8
_ID = re.compile(r"\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                 r"[0-9a-fA-F]{12}|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}|[A-Za-z0-9+=_\-~.%]{20,}")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def fold_path(path: str) -> str:
    """The path with its id segments folded (see the module doc).

    >>> fold_path("/repos/octo/hello/commits/a1b2c3d4e5f6")
    '/repos/octo/hello/commits/{id}'
    """
    parts = path.split("/", MAX_SEGMENTS + 1)
    cut = len(parts) > MAX_SEGMENTS + 1
    if cut:
        parts = parts[:MAX_SEGMENTS + 1]
    out = ["{id}" if part and _ID.fullmatch(part) else part for part in parts]
    return "/".join(out) + ("/..." if cut else "") if path else "/"


def upstream_label(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]``, lower-case, default port dropped."""
    scheme = (scheme or "http").lower()
    host = (host or "").lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def upstream_of(url: str) -> tuple[str, str]:
    """``(upstream, path template)`` of an absolute URL (see the module doc)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid url)", "/"
    return upstream_label(parts.scheme, parts.hostname or "", port), fold_path(parts.path)
