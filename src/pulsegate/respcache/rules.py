"""What may be cached: the safety rules, pure functions of the headers.

A request may use the cache (be served from it, or have its response learnt) only if

* its method is GET;
* it carries no header that looks like a credential -- ``Authorization``, ``Cookie``,
  and any whose name has one of :data:`CREDENTIAL_WORDS` in it (``X-Session-Token``,
  ``X-Api-Key``, ``X-Forwarded-User``, ``X-Hub-Signature`` ...: fail-closed, an
  unknown way to say who the user is counts as one) -- unless ``response_cache_vary``
  names that header, in which case its value (digested) is part of the key: one
  user's entry can never answer another's request. Nor a WSGI request whose server
  authenticated the client (``REMOTE_USER``, ``AUTH_TYPE``, a client certificate), nor
  one whose header names cannot be read;
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
    >>> [looks_like_credential(n) for n in ("X-Session-Token", "x_apikey", "user-agent")]
    [True, True, False]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

__all__ = ["CREDENTIAL_WORDS", "credential_header", "freshness", "looks_like_credential",
           "request_key", "request_refusal", "response_refusal", "stored_headers"]

#: Words in a request header's name that say it may carry who the user is (compared
#: with the name's letters and digits only: ``X-Api-Key``, ``x_apikey`` and
#: ``X-APIKEY`` all have ``key``). Such a request is never cached unless the header is
#: named in ``response_cache_vary`` (and then keyed by its value). Broad on purpose:
#: a header wrongly taken for a credential costs hits, one wrongly taken for none
#: could share a user's page with another.
CREDENTIAL_WORDS = (
    "auth", "token", "sess", "cookie", "key", "secret", "passw", "pwd", "signature",
    "signed", "credential", "cert", "sslclient", "jwt", "bearer", "assertion", "oidc",
    "saml", "sso", "csrf", "xsrf", "user", "login", "email", "identity", "principal",
    "account", "tenant", "customer", "member", "role", "clientid", "orgid", "uid",
    "impersonat", "onbehalfof", "claim", "group", "consumer", "device", "visitor",
    "anonym", "profile", "person")
#: Names with such a word that identify nobody, read the same way (removed first).
_INNOCENT = re.compile("useragent|secfetchuser|devicememory|uuid|guid")
_WORDS = re.compile("|".join(CREDENTIAL_WORDS))
_NOT_ALNUM = re.compile("[^a-z0-9]")
_NEVER = ("no-store", "private", "no-cache")
#: Response headers never replayed from an entry: per connection or per response
#: (recomputed, or added by the server and by pulsegate on the hit itself).
_NOT_STORED = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "proxy-connection", "content-length", "content-type",
                         "date", "age", "set-cookie", "ratelimit", "ratelimit-policy",
                         "retry-after", "server"})
#: Longest path + query kept in an entry (a longer URL is not cached: bounded memory).
MAX_URL = 2048


@lru_cache(maxsize=1024)
def looks_like_credential(name: str) -> bool:
    """Whether a request header's name has a :data:`CREDENTIAL_WORDS` word in it."""
    squashed = _INNOCENT.sub("", _NOT_ALNUM.sub("", name.lower()))
    return _WORDS.search(squashed) is not None


def credential_header(headers: Any, vary: tuple[str, ...]) -> str | None:
    """The first header of ``headers`` (a view with ``get(name)`` and ``names()``) that
    looks like a credential and is not keyed by ``vary``, or None. A ``cgi:`` name (a
    server's own authentication, :func:`pulsegate.http.environ_header_names`) always
    counts; a header with an empty value identifies nobody. A view that cannot list
    its names counts as one that has a credential (fail-closed)."""
    names = getattr(headers, "names", None)
    if names is None:
        return "unlisted headers"
    get = headers.get
    name: str
    for name in names():
        if name in vary or not looks_like_credential(name):
            continue
        if name.startswith("cgi:") or get(name):
            return name
    return None


def request_refusal(headers: Any, vary: tuple[str, ...]) -> str | None:
    """Why a GET with ``headers`` (a ``.get(name)``/``.names()`` view) may not use the
    cache, or None."""
    get = headers.get
    credential = credential_header(headers, vary)
    if credential is not None:
        return credential
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
