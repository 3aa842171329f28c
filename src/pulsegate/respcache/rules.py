"""What may be cached: the safety rules, pure functions of the headers.

A request may use the cache (be served from it, or have its response learnt) only if

* its method is GET;
* it carries no credential -- ``Authorization``, ``Proxy-Authorization``, ``Cookie``,
  ``X-API-Key``, ``X-Auth-Token`` -- unless ``response_cache_vary`` names that header,
  in which case its value (digested) is part of the key: one user's entry can never
  answer another's request;
* it does not ask for a fresh answer (``Cache-Control: no-cache``/``no-store``,
  ``Pragma: no-cache``), nor for a conditional or partial one (``If-None-Match``,
  ``If-Modified-Since``, ``Range``: the app answers those itself).

A response may be stored only if its status is 200, its body is at most
``response_cache_max_body`` bytes, it sets no cookie, its ``Cache-Control`` has none
of ``no-store``, ``private``, ``no-cache`` and no ``max-age=0``/``s-maxage=0``, and its
``Vary`` names only headers that key the entry (never ``*``). Its time to live is
``min(response_cache_ttl, s-maxage or max-age)``.

    >>> response_refusal(200, [("content-type", "text/plain")], 5, 100, ("accept",))
    >>> response_refusal(200, [("set-cookie", "a=1")], 5, 100, ())
    'set-cookie'
    >>> response_refusal(200, [("cache-control", "private, max-age=60")], 5, 100, ())
    'cache-control'
    >>> freshness([("cache-control", "public, max-age=5")], 30.0)
    5.0
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = ["CREDENTIAL_HEADERS", "freshness", "request_key", "request_refusal",
           "response_refusal", "stored_headers"]

#: Request headers that identify a user: such a request is never cached unless the
#: header is named in ``response_cache_vary`` (and then keyed by its value).
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key",
                      "x-auth-token")
_NEVER = ("no-store", "private", "no-cache")
#: Response headers never replayed from an entry: per connection or per response
#: (recomputed, or added by the server and by pulsegate on the hit itself).
_NOT_STORED = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "proxy-connection", "content-length", "content-type",
                         "date", "age", "set-cookie", "ratelimit", "ratelimit-policy",
                         "retry-after", "server"})
#: Longest path + query kept in an entry (a longer URL is not cached: bounded memory).
MAX_URL = 2048


def request_refusal(headers: Any, vary: tuple[str, ...]) -> str | None:
    """Why a GET with ``headers`` (a ``.get(name)`` view) may not use the cache, or None."""
    get = headers.get
    for name in CREDENTIAL_HEADERS:
        if get(name) and name not in vary:  # (an empty value identifies nobody)
            return name
    for name in ("cache-control", "pragma"):
        value = get(name)
        if value is not None and ("no-cache" in value.lower() or "no-store" in value.lower()):
            return "request " + name
    for name in ("if-none-match", "if-modified-since", "range"):
        if get(name) is not None:
            return name
    return None


def request_key(method: str, path: str, query: str, headers: Any,
                vary: tuple[str, ...]) -> bytes:
    """16 bytes naming what the response may depend on: the method, path, query and the
    values of the ``vary`` headers (credentials among them only as part of the digest,
    never kept). ``\\x00`` separates the parts, which cannot contain it in HTTP."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{method}\x00{path}\x00{query}".encode("utf-8", "surrogateescape"))
    get = headers.get
    for name in vary:
        value = get(name)
        h.update(b"\x00" + (b"-" if value is None else b"=" + value.encode(
            "utf-8", "surrogateescape")))
    return h.digest()


def _directives(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    out: list[str] = []
    for key, value in headers:
        if key.lower() == name:
            out.extend(d.strip().lower() for d in value.split(",") if d.strip())
    return out


def response_refusal(status: int, headers: list[tuple[str, str]], size: int | None,
                     max_body: int, vary: tuple[str, ...]) -> str | None:
    """Why a response may not be stored, or None. ``size`` None: the body was not
    captured whole (streamed past ``max_body``)."""
    if status != 200:
        return "status"
    if size is None or size > max_body:
        return "size"
    for key, _ in headers:
        if key.lower() == "set-cookie":
            return "set-cookie"
    for directive in _directives(headers, "cache-control"):
        name, _, value = directive.partition("=")
        if name in _NEVER or (name in ("max-age", "s-maxage") and value.strip() in ("0", "")):
            return "cache-control"
    for name in _directives(headers, "vary"):
        if name == "*" or name not in vary:
            return "vary"
    return None


def freshness(headers: list[tuple[str, str]], ttl: float) -> float:
    """Seconds the response stays fresh: ``ttl``, or less if ``s-maxage`` (else
    ``max-age``) says so."""
    ages: dict[str, float] = {}
    for directive in _directives(headers, "cache-control"):
        name, _, value = directive.partition("=")
        if name in ("max-age", "s-maxage"):
            try:
                ages[name] = max(0.0, float(value.strip().strip('"')))
            except ValueError:
                continue
    limit = ages.get("s-maxage", ages.get("max-age"))
    return ttl if limit is None else min(ttl, limit)


def stored_headers(headers: list[tuple[str, str]],
                   added: list[tuple[str, str]] | None) -> tuple[str | None, list[tuple[str, str]]]:
    """The content type and the headers to replay on a hit: the app's own, less those
    per connection or per response and those pulsegate added (``added``, the
    request's ``x-ml-*`` and rate-limit fields)."""
    ours = {name for name, _ in added} if added else set()
    content_type = None
    kept = []
    for key, value in headers:
        low = key.lower()
        if low == "content-type":
            content_type = value
        elif low not in _NOT_STORED and low not in ours and not low.startswith("x-ml-"):
            kept.append((low, value))
    return content_type, kept
