"""The control section's checks: rates, per-route rules, client keys, forwarding
headers, proxies, priorities and the bucket storage URL.

Same contract as :mod:`pulsegate.config_checks`: ``check(key, value) -> normalised
value`` or a :class:`~pulsegate.config.ConfigError` naming the key, the value and what
is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulsegate.config_checks import (
    ConfigError,
    _redis_url,
    _string_list,
    _url,
    choice,
    mapping,
    number,
)

#: Bounds of a rate: its count, and its window in seconds (a millisecond to a year).
MAX_RATE_COUNT = 1_000_000_000
RATE_WINDOW = (0.001, 365 * 86400.0)
#: Bounds of a bucket's depth (requests at once) and of one request's cost in tokens.
MAX_BURST = 1_000_000_000
MAX_COST = 1_000_000


def _rate(key: str, value: Any) -> str:
    from pulsegate.control.ratelimit import parse_rate

    allowed = (f"a rate like '100/minute' or '5 per 10 seconds', count 1 to "
               f"{MAX_RATE_COUNT:_}, window 0.001 s to 365 days")
    if not isinstance(value, str) or len(value) > 64:
        raise ConfigError(key, value, allowed)
    try:
        quota, window = parse_rate(value)
    except ValueError as exc:
        raise ConfigError(key, value, str(exc)) from None
    # A 400-digit count parses to inf (or a number no bucket arithmetic survives):
    # refused here, or every limiter check would fault and limiting silently stop.
    if not (1 <= quota <= MAX_RATE_COUNT and RATE_WINDOW[0] <= window <= RATE_WINDOW[1]):
        raise ConfigError(key, value, allowed)
    return value.strip()


def _route_rates(key: str, value: Any) -> Mapping[str, str]:
    """route template -> "rate" or "rate;burst" (e.g. {"/login": "5/minute;5"})."""
    allowed = "a mapping of route template -> 'N/unit' or 'N/unit;burst'"
    out: Mapping[str, str] = mapping(allowed=allowed)(key, value)
    for route, spec in out.items():
        if not isinstance(spec, str):
            raise ConfigError(f"{key}[{route!r}]", spec, allowed)
        rate, _, burst = spec.partition(";")
        _rate(f"{key}[{route!r}]", rate)
        if burst:
            number(1, MAX_BURST)(f"{key}[{route!r}] burst", burst)
    return out


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def header_name(key: str, value: Any, allowed: str = "an HTTP header name") -> str:
    """An HTTP field name (RFC 9110 token, at most 256 characters), lower-cased."""
    v = value.strip().lower() if isinstance(value, str) else ""
    if not v or len(v) > 256 or not set(v) <= _TOKEN_CHARS:
        raise ConfigError(key, value, allowed)
    return v


def _client_key(key: str, value: Any) -> Any:
    allowed = "'ip', 'header:<name>' or a callable taking the request info"
    if callable(value):
        return value
    if isinstance(value, str):
        v = value.strip()
        if v == "ip":
            return v
        if v.lower().startswith("header:"):
            return "header:" + header_name(key, v[7:], allowed)
    raise ConfigError(key, value, allowed)


def _header_or_none(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return header_name(key, value, "an HTTP header name, or none")


def _forwarded_header(key: str, value: Any) -> tuple[str, ...]:
    """One forwarding header name or a list of them in hop order (outermost first)."""
    from pulsegate.control.clientkey import FORWARDED_HEADERS, parse_forwarded_header

    allowed = ("one of " + " | ".join(FORWARDED_HEADERS) + ", or a list of 1-4 of them in "
               "hop order")
    if not isinstance(value, str) and (not isinstance(value, (list, tuple))
                                       or not all(isinstance(v, str) for v in value)):
        raise ConfigError(key, value, allowed)
    try:
        return parse_forwarded_header(value)
    except ValueError:
        raise ConfigError(key, value, allowed) from None


def _cidrs(key: str, value: Any) -> tuple[str, ...]:
    import ipaddress

    allowed = "a list of IP networks (CIDR), e.g. 10.0.0.0/8"
    items = _string_list(key, value, allowed)
    for item in items:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ConfigError(key, item, allowed) from None
    return tuple(i.strip() for i in items)


def _priorities(key: str, value: Any) -> Mapping[str, str]:
    """route template (or path prefix ending in '*') -> high | normal | low."""
    out: Mapping[str, str] = mapping(
        choice("high", "normal", "low"),
        "a mapping of route template or '/prefix*' -> high | normal | low")(key, value)
    return out


def _route_costs(key: str, value: Any) -> Mapping[str, float]:
    out: Mapping[str, float] = mapping(
        number(0, MAX_COST, lo_open=True),
        f"a mapping of route template -> cost > 0 and <= {MAX_COST:_}")(key, value)
    return out




def _storage_url(key: str, value: Any) -> str:
    allowed = ("memory://, redis://host:port/db, rediss://..., unix:///socket or "
               "redis+cluster://host:port")
    if isinstance(value, str) and value.strip() == "memory://":
        return "memory://"
    url = _url(value, ("redis", "rediss", "unix", "redis+cluster"))
    if not _redis_url(url, cluster=url is not None and url.scheme == "redis+cluster"):
        raise ConfigError(key, value, allowed)
    return str(value)


def _healing_actions(key: str, value: Any) -> tuple[Any, ...]:
    """A list (a JSON array when given as a string) of healing actions, each a mapping
    like ``{"do": "shed", "priority": "low"}`` (:mod:`pulsegate.control.healing_actions`)."""
    from pulsegate.control.healing_actions import MAX_ACTIONS, parse_action

    allowed = (f"a list of at most {MAX_ACTIONS} actions like "
               "[{\"do\": \"shed\", \"priority\": \"low\"}] (docs/control.md)")
    original = value
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except (ValueError, RecursionError):
            raise ConfigError(key, original, allowed + " (JSON array)") from None
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) \
            or len(value) > MAX_ACTIONS:
        raise ConfigError(key, original, allowed)
    out = []
    for i, entry in enumerate(value):
        try:
            out.append(parse_action(f"{key}[{i}]", entry))
        except ValueError as exc:  # "healing_actions[1]['priority']: what is allowed"
            where, _, what = str(exc).partition(": ")
            raise ConfigError(where, entry, what) from None
    return tuple(out)
