"""The response cache section (``config.respcache``): the learned, opt-in cache
of GET responses (:mod:`pulsegate.respcache`, docs/response-cache.md). Off by default;
on, only the routes of ``response_cache_routes`` are ever considered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pulsegate.config_checks import (
    ConfigError,
    _bool,
    _redis_url,
    _string_list,
    _url,
    mapping,
    number,
)
from pulsegate.config_sections.base import DAY_S, MILLION, Section, option, refuse_unknown_keywords
from pulsegate.respcache.rules import looks_like_credential

_TARGET = ("a route ('GET /items/{id}', '/items/{id}') or a path prefix ending in '*' "
           "('/items*', 'GET /items*')")
_TARGETS = ("a list of routes ('GET /items/{id}', '/items/{id}') or path prefixes ending "
            "in '*' ('/items*')")
_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _target(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1024 \
            or any(ch in value for ch in "\r\n\t\x00"):
        raise ConfigError(key, value, _TARGET)
    text = value.strip()
    if text == "$path":  # (an invalidation target: the write's own path)
        return text
    method, _, rest = text.partition(" ") if " " in text else ("", "", text)
    if (method and method.upper() not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                          "*")) or not rest.startswith("/"):
        raise ConfigError(key, value, _TARGET)
    return f"{method.upper()} {rest}" if method else rest


def _targets(key: str, value: Any) -> tuple[str, ...]:
    return tuple(_target(key, v) for v in _string_list(key, value, _TARGETS))


def _vary(key: str, value: Any) -> tuple[str, ...]:
    allowed = "a list of request header names (letters, digits, '-')"
    names = _string_list(key, value, allowed)
    out = []
    for name in names:
        low = name.strip().lower()
        if not low or not set(low) <= _HEADER_CHARS:
            raise ConfigError(key, value, allowed)
        out.append(low)
    return tuple(dict.fromkeys(out))


def _ignore(key: str, value: Any) -> tuple[str, ...]:
    names = _vary(key, value)
    for name in names:
        if looks_like_credential(name):
            raise ConfigError(key, value, "request header names that identify nobody and "
                              f"change no page ({name!r} looks like a credential: name it "
                              "in response_cache_vary, which keys entries by its value)")
    return names


def _storage(key: str, value: Any) -> str:
    allowed = ("memory:// (per process), redis://host:port/db, rediss://..., unix:///socket "
               "or redis+cluster://host:port")
    if isinstance(value, str) and value.strip() == "memory://":
        return "memory://"
    url = _url(value, ("redis", "rediss", "unix", "redis+cluster"))
    if not _redis_url(url, cluster=url is not None and url.scheme == "redis+cluster"):
        raise ConfigError(key, value, allowed)
    return str(value)


def _prefix(key: str, value: Any) -> str:
    allowed = "1-64 characters of letters, digits and ':._-'"
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not set(value) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-"):
        raise ConfigError(key, value, allowed)
    return value


def _invalidations(key: str, value: Any) -> Mapping[str, tuple[str, ...]]:
    checked = mapping(_targets, "a mapping of write target -> targets it invalidates")(key, value)
    if "$path" in checked:
        raise ConfigError(key, value, "a write target: " + _TARGET)
    return {_target(key, k): v for k, v in checked.items()}


@refuse_unknown_keywords("an option of config.respcache (docs/configuration.md)")
@dataclass(frozen=True)
class ResponseCacheConfig(Section):
    """The learned response cache."""

    NAME: ClassVar[str] = "respcache"

    response_cache: bool = option(False, "Serve GET responses of the allow-listed routes "
                                  "from a cache once they are learnt to repeat "
                                  "(docs/response-cache.md).", _bool)
    response_cache_routes: tuple[str, ...] = option((), "The allow-list: route templates "
                                                    "('/items/{id}') or path prefixes "
                                                    "ending in '*'; nothing else is cached.",
                                                    _targets)
    response_cache_ttl: float = option(30.0, "Seconds a stored response is fresh (less when "
                                       "its Cache-Control max-age says so).",
                                       number(0, DAY_S, lo_open=True))
    response_cache_stale_seconds: float = option(10.0, "Stale-while-revalidate window: "
                                                 "seconds after freshness one request "
                                                 "refreshes while the others get the "
                                                 "stale copy; 0: none.", number(0, DAY_S))
    response_cache_prediction_threshold: float = option(
        0.9, "Confidence that a route answers identical requests with identical bodies "
        "above which it is served from the cache.", number(0, 1, lo_open=True))
    response_cache_min_saving_ms: float = option(
        0.5, "Expected milliseconds saved per request of a route (repeat share x mean "
        "latency) below which it is not worth caching.", number(0, 3_600_000))
    response_cache_vary: tuple[str, ...] = option(
        ("accept", "accept-encoding", "accept-language"), "Request headers whose values "
        "key the entries. A request with a header the cache does not know (not HTTP's, "
        "a browser's, a tracer's or a proxy's own: Authorization, Cookie, X-Api-Key, "
        "X-Ticket ...) is cached only if that header is named here (then per value: "
        "never across users) or in response_cache_ignore.", _vary)
    response_cache_ignore: tuple[str, ...] = option(
        (), "Request headers that identify nobody and change no page (a proxy's or "
        "client library's own): a request carrying them may still be cached, unkeyed by "
        "them. A credential-like name is refused here.", _ignore)
    response_cache_invalidate: Mapping[str, tuple[str, ...]] = option(
        dict, "Write target -> targets it invalidates ('PUT /items/{id}': ['$path', "
        "'/items']; '$path': the write's own path); "
        "empty: every non-GET/HEAD/OPTIONS request invalidates the whole cache.",
        _invalidations, factory=True)
    response_cache_max_entries: int = option(1000, "Stored responses, at most.",
                                             number(1, MILLION, integer=True))
    response_cache_max_bytes: int = option(64 * 2**20, "Bytes of stored bodies, at most.",
                                           number(1024, 2**40, integer=True))
    response_cache_max_body: int = option(256 * 1024, "Largest body stored or digested "
                                          "(bytes); a larger response is never cached.",
                                          number(1, 2**31, integer=True))
    response_cache_storage: str = option("memory://", "Where entries live: memory:// (per "
                                         "process) or redis://host:port/db (shared by every "
                                         "worker, with a shared invalidation generation; "
                                         "redis+cluster://host:port: a Redis Cluster).",
                                         _storage)
    response_cache_key_prefix: str = option("pulsegate:rc", "Prefix of the shared store's "
                                            "Redis keys (one per application sharing a "
                                            "Redis).", _prefix)
