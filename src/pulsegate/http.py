"""Framework-free HTTP helpers shared by every adapter (ASGI, WSGI, Django).

How a status line is written and read, and how request headers are read from an ASGI
scope or a WSGI ``environ``, is decided once, here; what becomes of a request is
:mod:`pulsegate.cycle`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

_REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


class ExcludedPaths:
    """``exclude_paths``: a path is excluded when it is one of them or lies below one.

    >>> "/health/db" in ExcludedPaths(["/health"]), "/healthcare" in ExcludedPaths(["/health"])
    (True, False)
    """

    __slots__ = ("exact", "prefixes", "stems")

    def __init__(self, paths: Iterable[str]) -> None:
        stems = tuple(paths)
        self.exact = frozenset(stems)
        self.prefixes = tuple(p + "/" for p in stems if p != "/")
        #: Every excluded path starts with one of these: most paths are told apart by
        #: this one test.
        self.stems = stems

    def __contains__(self, path: str) -> bool:
        return path.startswith(self.stems) and (
            path in self.exact or path.startswith(self.prefixes))


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


class ASGIHeaders:
    """Lazy lower-case view of an ASGI scope's ``headers``; repeated headers are joined
    with ", " as RFC 9110 allows. Decoded only if something asks."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] | None) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def get(self, name: str, /) -> str | None:
        m = self._map
        if m is None:
            m = {}
            repeated: dict[str, list[str]] = {}
            for k, v in self._raw or ():
                key = k.decode("latin-1").lower()
                val = v.decode("latin-1")
                if key in m:  # joined once at the end: linear in the headers' size
                    repeated.setdefault(key, [m[key]]).append(val)
                m[key] = val
            for key, vals in repeated.items():
                m[key] = ", ".join(vals)
            self._map = m
        return m.get(name)

    def names(self) -> list[str]:
        """The lower-case names of the headers present (asked only by the response cache,
        which refuses a request carrying a header that looks like a credential)."""
        return [k.decode("latin-1").lower() for k, _ in self._raw or ()]


class EnvironHeaders(tuple[Mapping[str, Any]]):
    """Lower-case, dash-separated read access to the request headers of a WSGI
    ``environ`` (``CONTENT_TYPE``, ``CONTENT_LENGTH`` and ``HTTP_*`` keys). Nothing is
    decoded until something asks.

    Made per request, and rarely asked: a one-item tuple, so making it runs no Python
    code (``EnvironHeaders((environ,))``)."""

    __slots__ = ()

    def get(self, name: str, /) -> str | None:
        return environ_header(self[0], name)

    def names(self) -> list[str]:
        """See :func:`environ_header_names`."""
        return environ_header_names(self[0])


def environ_header(environ: Mapping[str, Any], name: str) -> str | None:
    """The request header ``name`` (any case) of a WSGI environ, or None."""
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    value = environ.get(key)
    return value if isinstance(value, str) else None


#: CGI variables a server sets from the client's own credentials (HTTP authentication
#: done by the server, a client certificate): they name a user as a header would.
_CGI_IDENTITY = ("REMOTE_USER", "AUTH_TYPE", "SSL_CLIENT_CERT", "SSL_CLIENT_S_DN")


def environ_header_names(environ: Mapping[str, Any]) -> list[str]:
    """The lower-case names of the request headers of a WSGI environ, then
    ``cgi:remote_user`` and the like for each CGI variable that carries the client's
    identity (``REMOTE_USER``, ``AUTH_TYPE``, ``SSL_CLIENT_CERT``, ``SSL_CLIENT_S_DN``).
    No header can be named so (``:`` is not a token character): a configuration can
    never mistake one for the other.

    >>> environ_header_names({"HTTP_X_SESSION_TOKEN": "t", "REMOTE_USER": "al", "PATH_INFO": "/"})
    ['x-session-token', 'cgi:remote_user']
    >>> environ_header_names({"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": ""})
    ['content-type']
    """
    names = [k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_")]
    names += [k.lower().replace("_", "-") for k in ("CONTENT_TYPE", "CONTENT_LENGTH")
              if environ.get(k)]
    names += ["cgi:" + k.lower() for k in _CGI_IDENTITY if environ.get(k)]
    return names
