"""The checks behind :class:`pulsegate.config.Config`'s options.

A check is ``check(key, value) -> normalised value``; it raises
:class:`~pulsegate.config.ConfigError` naming the key, the value and what is allowed.
Checks also accept the string forms that environment variables and settings files
carry ("true", "0.5", "a,b", a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

Check = Callable[[str, Any], Any]


class ConfigError(ValueError):
    """An invalid option: ``key``, the offending ``value`` and what ``allowed``."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"pulsegate: invalid {key}={value!r}; allowed: {allowed}")





def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(key, value, "true or false")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False,
           lo_open: bool = False, optional: bool = False) -> Check:
    """A number in [lo, hi] (or (lo, hi] with ``lo_open``); ``optional`` admits None."""
    kind = "an integer" if integer else "a number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    allowed = kind + (" " + " and ".join(parts) if parts else "") + (", or none" if optional else "")

    def check(key: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            if optional:
                return None
            raise ConfigError(key, value, allowed)
        if isinstance(value, bool):
            raise ConfigError(key, value, allowed)
        try:
            v = (int(value) if float(value) == int(float(value)) else None) if integer else float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(key, value, allowed) from None
        if v is None or v != v:  # non-integral integer, or NaN
            raise ConfigError(key, value, allowed)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ConfigError(key, value, allowed)
        if hi is not None and v > hi:
            raise ConfigError(key, value, allowed)
        return v

    return check


def choice(*allowed: str) -> Check:
    def check(key: str, value: Any) -> str:
        v = value.strip().lower() if isinstance(value, str) else value
        if v not in allowed:
            raise ConfigError(key, value, " | ".join(allowed))
        return str(v)

    return check


def text(*, optional: bool = False) -> Check:
    def check(key: str, value: Any) -> str | None:
        if value is None or (optional and isinstance(value, str) and value.strip() == ""):
            if optional:
                return None
            raise ConfigError(key, value, "a string")
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string" + (" or none" if optional else ""))
        return value

    return check


def paths(key: str, value: Any) -> tuple[str, ...]:
    """A list of URL path prefixes, each starting with '/'. A string is comma-separated."""
    items = _string_list(key, value, "a list of URL paths starting with '/'")
    for item in items:
        if not item.startswith("/"):
            raise ConfigError(key, value, "a list of URL paths starting with '/'")
    return tuple(p.rstrip("/") or "/" for p in items)


def url_path(*, optional: bool = False) -> Check:
    """One URL path starting with '/', without a trailing '/' (none allowed if optional)."""
    allowed = "a URL path starting with '/'" + (", or none" if optional else "")

    def check(key: str, value: Any) -> str | None:
        if optional and (value is None or (isinstance(value, str) and
                                           value.strip().lower() in ("", "none"))):
            return None
        if not isinstance(value, str) or not value.startswith("/") or any(
                ch in value for ch in "?# \t\r\n"):
            raise ConfigError(key, value, allowed)
        return value.rstrip("/") or "/"

    return check


def strings(key: str, value: Any) -> tuple[str, ...]:
    return _string_list(key, value, "a list of strings")


def _string_list(key: str, value: Any, allowed: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise ConfigError(key, value, allowed)
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(key, value, allowed)
    return items


def mapping(value_check: Check | None = None, allowed: str = "a mapping") -> Check:
    """A mapping (a JSON object when given as a string), values checked one by one."""

    def check(key: str, value: Any) -> Mapping[str, Any]:
        original = value
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ConfigError(key, original, allowed + " (JSON object)") from None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(key, original, allowed)
        out = {k: (value_check(f"{key}[{k!r}]", v) if value_check else v) for k, v in value.items()}
        return MappingProxyType(out)

    return check


def _http_url(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(key, value, "an http:// or https:// URL, or none")
    return value


def _grid(key: str, value: Any) -> tuple[float, float, float]:
    allowed = "low, high, step with 0 <= low <= high <= 1 and step > 0"
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    try:
        lo, hi, step = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, allowed) from None
    if not (0 <= lo <= hi <= 1 and step > 0):
        raise ConfigError(key, value, allowed)
    return lo, hi, step


def callable_or_none(key: str, value: Any) -> Any:
    if value is None or callable(value):
        return value
    raise ConfigError(key, value, "a callable or none")


# control checks (rate limits, client keys, priorities) ---------------------------------


def _rate(key: str, value: Any) -> str:
    from pulsegate.control.ratelimit import parse_rate

    try:
        parse_rate(value)
    except ValueError as exc:
        raise ConfigError(key, value, str(exc)) from None
    return str(value).strip()


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
            number(0, lo_open=True)(f"{key}[{route!r}] burst", burst)
    return out


def _client_key(key: str, value: Any) -> Any:
    allowed = "'ip', 'header:<name>' or a callable taking the request info"
    if callable(value):
        return value
    if isinstance(value, str):
        v = value.strip()
        if v == "ip" or (v.lower().startswith("header:") and v[7:].strip()):
            return v if v == "ip" else "header:" + v[7:].strip().lower()
    raise ConfigError(key, value, allowed)


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

    items = _string_list(key, value, "a list of IP networks (CIDR), e.g. 10.0.0.0/8")
    for item in items:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ConfigError(key, item, "a list of IP networks (CIDR), e.g. 10.0.0.0/8") from None
    return tuple(i.strip() for i in items)


def _priorities(key: str, value: Any) -> Mapping[str, str]:
    """route template (or path prefix ending in '*') -> high | normal | low."""
    out: Mapping[str, str] = mapping(
        choice("high", "normal", "low"),
        "a mapping of route template or '/prefix*' -> high | normal | low")(key, value)
    return out


def _route_costs(key: str, value: Any) -> Mapping[str, float]:
    out: Mapping[str, float] = mapping(number(0, lo_open=True),
                                       "a mapping of route template -> cost > 0")(key, value)
    return out


def _storage_url(key: str, value: Any) -> str:
    if isinstance(value, str) and value.startswith(("memory://", "redis://", "rediss://",
                                                     "unix://", "redis+cluster://")):
        return value
    raise ConfigError(key, value, "memory:// or a redis://host:port/db URL")
