"""What may be cached: the safety rules, pure functions of the headers.

A request may use the cache (be served from it, or have its response learnt) only if

* its method is GET;
* every header it carries is one the cache understands (fail-closed): a header of
  :data:`KNOWN_HEADERS` (HTTP's own, the browser's ``Sec-*``, tracing, proxies' and
  CDNs' informational headers: none says who the user is), one named in
  ``response_cache_vary`` (its value, digested, is then part of the key: one user's
  entry can never answer another's request) or in ``response_cache_ignore`` (the app
  says it identifies nobody and changes nothing). Any other header with a value --
  ``Authorization``, ``Cookie``, ``X-Api-Key``, but also ``X-Ticket`` or ``X-Who``,
  which no word list recognises -- refuses the request. Nor a WSGI request whose
  server authenticated the client (``REMOTE_USER``, ``AUTH_TYPE``, a client
  certificate), nor one whose header names cannot be read. The headers of
  :data:`ALWAYS_KEYED` (``Host``, ``X-Forwarded-Host`` ...: a page may print them in
  its links) are always part of the key;
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
    >>> [understood(n) for n in ("sec-ch-ua-arch", "traceparent", "x-ticket")]
    [True, True, False]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable
from functools import lru_cache
from typing import Any

__all__ = ["ALWAYS_KEYED", "CREDENTIAL_WORDS", "KNOWN_HEADERS", "freshness",
           "looks_like_credential", "request_key", "request_refusal", "response_refusal",
           "stored_headers", "understood", "unknown_header"]

#: Request headers the cache understands: they say nothing of who the user is, and a
#: page does not change with them unless ``response_cache_vary`` names them (the
#: response's own ``Vary`` is checked too). Written from the specifications and the
#: vendors' documentation, not from traffic: RFC 9110/9111/9218 request fields (not
#: ``From``: a user's e-mail address), Fetch metadata and client hints (the
#: ``sec-ch-`` prefix, RFC 8942), W3C Trace Context and Baggage, B3, Jaeger, Datadog,
#: Sentry, AWS X-Ray, Google Cloud Trace, and the informational headers nginx,
#: Cloudflare, CloudFront, AWS ALB, Google's load balancer, Heroku and Envoy add.
KNOWN_HEADERS = frozenset({
    # RFC 9110 / 9111 / 9218 / 6454, the browser's own
    "accept", "accept-charset", "accept-encoding", "accept-language", "cache-control",
    "pragma", "connection", "keep-alive", "te", "upgrade", "user-agent", "referer",
    "origin", "expect", "max-forwards", "via", "content-type", "content-length",
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range",
    "range", "priority", "dnt", "sec-gpc", "upgrade-insecure-requests", "save-data",
    "device-memory", "dpr", "viewport-width", "width", "downlink", "ect", "rtt",
    "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user",
    "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform",  # (UA-CH's defaults; any sec-ch-)
    "sec-purpose", "purpose", "x-requested-with",
    # tracing and request ids
    "traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id",
    "x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
    "x-datadog-origin", "x-datadog-tags", "sentry-trace", "x-amzn-trace-id",
    "x-cloud-trace-context", "x-request-id", "x-correlation-id", "newrelic",
    # proxies, load balancers and CDNs (the client's address is not a credential)
    "x-forwarded-for", "x-real-ip", "true-client-ip", "cdn-loop", "x-request-start",
    "connect-time", "total-route-time", "cf-connecting-ip", "cf-ipcountry", "cf-ray",
    "cf-visitor", "x-amz-cf-id", "cloudfront-viewer-country", "cloudfront-forwarded-proto",
    "cloudfront-is-desktop-viewer", "cloudfront-is-mobile-viewer",
    "cloudfront-is-tablet-viewer", "cloudfront-is-smarttv-viewer",
    "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count", "x-envoy-external-address",
    "x-envoy-internal", "x-envoy-decorator-operation"})
#: Request headers a page may print (absolute links, redirects): always part of the
#: key, so a request with a forged ``Host`` or ``X-Forwarded-Host`` only ever gets --
#: and only ever poisons -- its own entry (web cache poisoning by unkeyed headers).
ALWAYS_KEYED = ("host", "forwarded", "x-forwarded-host", "x-forwarded-proto",
                "x-forwarded-port", "x-forwarded-prefix")
_KNOWN = KNOWN_HEADERS | frozenset(ALWAYS_KEYED)
#: Browsers' client hints, a family that grows (``Sec-`` names no page script can set).
_KNOWN_PREFIXES = ("sec-ch-",)

#: Words in a request header's name that say it may carry who the user is (compared
#: with the name's letters and digits only: ``X-Api-Key``, ``x_apikey`` and
#: ``X-APIKEY`` all have ``key``). Such a header cannot be put in
#: ``response_cache_ignore`` (configuration check): only keyed, by
#: ``response_cache_vary``. (Requests are refused for any header not understood.)
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


def understood(name: str) -> bool:
    """Whether a lower-case request header name is one :data:`KNOWN_HEADERS` names."""
    return name in _KNOWN or name.startswith(_KNOWN_PREFIXES)


def unknown_header(headers: Any, passed: Collection[str]) -> str | None:
    """The first header of ``headers`` (a view with ``get(name)`` and ``names()``) that
    the cache does not understand (:func:`understood`) and ``passed`` (the
    ``response_cache_vary`` and ``response_cache_ignore`` names) does not name, or
    None. A ``cgi:`` name (a server's own authentication,
    :func:`pulsegate.http.environ_header_names`) always counts; a header with an empty
    value says nothing. A view that cannot list its names counts as one that has such
    a header (fail-closed)."""
    names = getattr(headers, "names", None)
    if names is None:
        return "unlisted headers"
    return _unknown(headers, names(), passed)


def _unknown(headers: Any, present: list[str], passed: Collection[str]) -> str | None:
    if _KNOWN.issuperset(present):  # the common case, one call in C
        return None
    get = headers.get
    for name in present:
        if name.startswith("cgi:"):
            return name
        if name in _KNOWN or name in passed or name.startswith(_KNOWN_PREFIXES):
            continue
        if get(name):
            return name
    return None


#: Request headers asking for a fresh, conditional or partial answer (refused).
_FRESH = ("cache-control", "pragma")
_CONDITIONAL = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
                "if-range", "range")
_ASKING = frozenset((*_FRESH, *_CONDITIONAL))


def request_refusal(headers: Any, passed: Collection[str]) -> str | None:
    """Why a GET with ``headers`` (a ``.get(name)``/``.names()`` view) may not use the
    cache, or None; ``passed``: the header names configured as understood."""
    names = getattr(headers, "names", None)
    if names is None:
        return "unlisted headers"
    present = names()
    unknown = _unknown(headers, present, passed)
    if unknown is not None:
        return unknown
    if _ASKING.isdisjoint(present):
        return None
    get = headers.get
    for name in _FRESH:
        value = get(name)
        if value is not None and ("no-cache" in value.lower() or "no-store" in value.lower()):
            return "request " + name
    for name in _CONDITIONAL:
        if get(name) is not None:
            return name
    return None


def request_key(method: str, path: str, query: str, headers: Any,
                vary: tuple[str, ...]) -> bytes:
    """16 bytes naming what the response may depend on: the method, path, query and the
    values of the :data:`ALWAYS_KEYED` and ``vary`` headers (credentials among them only
    as part of the digest, never kept). ``\\x00`` separates the parts, which cannot
    contain it in HTTP."""
    get = headers.get
    values = [get(name) for name in (*ALWAYS_KEYED, *vary)]
    text = "\x00".join([f"{method}\x00{path}\x00{query}",
                        *("-" if v is None else "=" + v for v in values)])
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


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
        if name == "*" or (name not in vary and name not in ALWAYS_KEYED):
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
