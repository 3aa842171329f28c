"""An outbound URL as it is reported: its upstream (``scheme://host[:port]``) and a path
template -- never the query string, the fragment or the user information.

* the host is lower-cased, a default port (80 for http, 443 for https) dropped, an IPv6
  address kept in brackets, a host longer than any DNS name (:data:`MAX_HOST`) reported
  as ``(long host)``;
* fail-closed: a path segment is kept only if it reads as a route literal -- a word of
  letters (``-``, ``_``, ``.``, ``~`` between them, at most :data:`MAX_WORD` characters)
  or a version (``v2``, ``v1.1``); anything else (digits, a UUID, ``cus_ABC123``, an
  e-mail, an encoded value) is folded to ``{id}``; the path is cut after
  :data:`MAX_SEGMENTS` segments;
* a route template the caller names (:func:`pulsegate.outbound.route`) replaces the
  folded path.

>>> upstream_of("https://user:secret@API.example.com:443/v1/users/42/orders?token=abc#x")
('https://api.example.com', '/v1/users/{id}/orders')
>>> upstream_of("http://10.0.0.5:8080/items/550e8400-e29b-41d4-a716-446655440000")
('http://10.0.0.5:8080', '/items/{id}')
>>> upstream_of("https://api.stripe.com/v1/customers/cus_NffrFeUfNV2Hib/sources")
('https://api.stripe.com', '/v1/customers/{id}/sources')
>>> upstream_of("https://mail.example/users/jo@example.com/inbox")
('https://mail.example', '/users/{id}/inbox')
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["MAX_SEGMENTS", "fold_path", "upstream_label", "upstream_of"]

MAX_SEGMENTS = 8
#: Longest word kept as a path literal.
MAX_WORD = 40
_LITERAL = re.compile(r"[A-Za-z]+(?:[-_.~][A-Za-z]+)*|v\d{1,3}(?:\.\d{1,3})?")
#: Longest host kept in a label (a DNS name has at most 253 characters) and scheme.
MAX_HOST = 253
MAX_SCHEME = 16
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
    out = [part if not part or (len(part) <= MAX_WORD and _LITERAL.fullmatch(part))
           else "{id}" for part in parts]
    return "/".join(out) + ("/..." if cut else "") if path else "/"


def upstream_label(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]``, lower-case, default port dropped."""
    scheme = (scheme or "http").lower()[:MAX_SCHEME]
    host = (host or "").lower()
    if len(host) > MAX_HOST:  # no DNS name is longer: not kept (memory, cardinality)
        host = "(long host)"
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
