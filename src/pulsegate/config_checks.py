"""``ConfigError`` and the checks every configuration section uses (the control
section's own -- rates, client keys, priorities -- are in
:mod:`pulsegate.config_sections.control_checks`).

A check is ``check(key, value) -> normalised value``; it raises
:class:`~pulsegate.config.ConfigError` naming the key, the value and what is allowed.
Checks also accept the string forms that environment variables and settings files
carry ("true", "0.5", "a,b", a JSON object).
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

Check = Callable[[str, Any], Any]


class ConfigError(ValueError, TypeError):
    """An invalid option: ``key``, the offending ``value`` and what is ``allowed``.

    A ``ValueError`` for a bad value and also a ``TypeError``, which Python raises for
    an unknown keyword argument: code written against ``add_middleware(..., typo=1)``
    raising ``TypeError`` keeps catching it.

    ``suggestion`` names a close option or value ("did you mean ...") when there is one.
    The message stays short: the value is cut to :data:`SHOWN_VALUE_CHARS` characters.

    >>> str(ConfigError("alpha", 1.5, "a number > 0 and <= 1"))
    'pulsegate: invalid alpha=1.5; allowed: a number > 0 and <= 1'
    """

    def __init__(self, key: str, value: object, allowed: str, *,
                 suggestion: str | None = None, unknown: bool = False) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.suggestion = suggestion
        what = "unknown option" if unknown else "invalid"
        hint = f"; did you mean {suggestion}?" if suggestion else ""
        name = key if len(key) <= SHOWN_VALUE_CHARS else shown(key)
        super().__init__(f"pulsegate: {what} {name}={shown(value)}; allowed: {allowed}{hint}")


#: How much of a bad value a message repeats (a 1 MB string must not become a 1 MB log line).
SHOWN_VALUE_CHARS = 80


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`SHOWN_VALUE_CHARS` with the full length noted."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    if len(text) <= SHOWN_VALUE_CHARS:
        return text
    return f"{text[:SHOWN_VALUE_CHARS - 20]}...({len(text)} chars)"


def suggest(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib ratio >= 0.75), if any.

    >>> suggest("z_treshold", ["z_threshold", "warmup"])
    'z_threshold'
    """
    if not isinstance(word, str) or len(word) > 100:
        return None
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_option(key: str, value: object, names: Iterable[str],
                   allowed: str = "an option listed in docs/configuration.md") -> ConfigError:
    """The error for a key that is no option; ``names`` are the options, spelt as the
    caller spells keys (``alpha`` or ``PULSEGATE_ALPHA``)."""
    return ConfigError(key, value, allowed, suggestion=suggest(key, names), unknown=True)


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


def bound(x: float) -> str:
    """A bound as the messages and docs print it: integers with ``_`` separators.

    >>> bound(1_000_000), bound(0.5)
    ('1_000_000', '0.5')
    """
    return f"{int(x):_}" if x == int(x) else f"{x:g}"


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False,
           lo_open: bool = False, optional: bool = False) -> Check:
    """A finite number in [lo, hi] (or (lo, hi] with ``lo_open``); ``optional`` admits None.

    NaN and the infinities are never numbers here; strings are parsed (``"0.5"``,
    ``"1e3"``, ``"1_000"``) but a string longer than 64 characters is not a number."""
    kind = "an integer" if integer else "a number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {bound(lo)}")
    if hi is not None:
        parts.append(f"<= {bound(hi)}")
    allowed = kind + (" " + " and ".join(parts) if parts else "") + (", or none" if optional else "")

    def check(key: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            if optional:
                return None
            raise ConfigError(key, value, allowed)
        if isinstance(value, bool) or (isinstance(value, str) and len(value) > 64):
            raise ConfigError(key, value, allowed)
        try:
            f = float(value)
            if not math.isfinite(f):
                raise ValueError
            v: float | None = (int(f) if f == int(f) else None) if integer else f
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(key, value, allowed) from None
        if v is None:  # a non-integral value for an integer option
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
            near = suggest(v, allowed)
            raise ConfigError(key, value, " | ".join(allowed), suggestion=near and repr(near))
        return str(v)

    return check


#: Longest string option (paths, names, tokens, URLs); longer is a mistake, not a setting.
MAX_TEXT = 4096
#: Most entries in a list or mapping option.
MAX_ENTRIES = 10_000


def text(*, optional: bool = False, max_len: int = MAX_TEXT) -> Check:
    allowed = f"a string of at most {max_len} characters" + (", or none" if optional else "")

    def check(key: str, value: Any) -> str | None:
        if value is None or (optional and isinstance(value, str) and value.strip() == ""):
            if optional:
                return None
            raise ConfigError(key, value, allowed)
        if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
            raise ConfigError(key, value, allowed)
        return value

    return check


def paths(key: str, value: Any) -> tuple[str, ...]:
    """A list of URL path prefixes, each starting with '/'. A string is comma-separated."""
    allowed = "a list of URL paths starting with '/'"
    items = _string_list(key, value, allowed)
    for item in items:
        if not item.startswith("/"):
            raise ConfigError(key, value, allowed)
    return tuple(p.rstrip("/") or "/" for p in items)


def url_path(*, optional: bool = False) -> Check:
    """One URL path starting with '/', without a trailing '/' (none allowed if optional)."""
    allowed = "a URL path starting with '/'" + (", or none" if optional else "")

    def check(key: str, value: Any) -> str | None:
        if optional and (value is None or (isinstance(value, str) and
                                           value.strip().lower() in ("", "none"))):
            return None
        if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_TEXT \
                or any(ch in value for ch in "?# \t\r\n\x00"):
            raise ConfigError(key, value, allowed)
        return value.rstrip("/") or "/"

    return check


def strings(key: str, value: Any) -> tuple[str, ...]:
    return _string_list(key, value, "a list of strings")


def _string_list(key: str, value: Any, allowed: str) -> tuple[str, ...]:
    """At most :data:`MAX_ENTRIES` strings of at most :data:`MAX_TEXT` characters."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise ConfigError(key, value, allowed)
    items = tuple(itertools.islice(value, MAX_ENTRIES + 1))
    if len(items) > MAX_ENTRIES or not all(isinstance(v, str) and len(v) <= MAX_TEXT
                                           for v in items):
        raise ConfigError(key, value, f"{allowed} (at most {MAX_ENTRIES:_} entries)")
    return items


def mapping(value_check: Check | None = None, allowed: str = "a mapping") -> Check:
    """A mapping (a JSON object when given as a string) of at most :data:`MAX_ENTRIES`
    string keys, values checked one by one."""

    def check(key: str, value: Any) -> Mapping[str, Any]:
        original = value
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except (ValueError, RecursionError):
                raise ConfigError(key, original, allowed + " (JSON object)") from None
        if not isinstance(value, Mapping) or len(value) > MAX_ENTRIES or not all(
                isinstance(k, str) and len(k) <= MAX_TEXT for k in value):
            raise ConfigError(key, original, allowed)
        out = {k: (value_check(f"{key}[{k!r}]", v) if value_check else v) for k, v in value.items()}
        return MappingProxyType(out)

    return check


def _url(value: Any, schemes: tuple[str, ...]) -> urllib.parse.SplitResult | None:
    """``value`` split as a URL with one of ``schemes``, a valid port and no blanks or
    control characters; None when it is not one."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or any(
            ch.isspace() or ord(ch) < 32 for ch in value):
        return None
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018 -- raises ValueError for a port outside 0-65535 or not a number
    except ValueError:
        return None
    return url if url.scheme in schemes else None


def _http_url(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    url = _url(value, ("http", "https"))
    if url is None or not url.hostname:
        raise ConfigError(key, value, "an http:// or https:// URL with a host, or none")
    return str(value)


def _grid(key: str, value: Any) -> tuple[float, float, float]:
    allowed = "low, high, step with 0 <= low <= high <= 1 and 0.001 <= step <= 1"
    given = value  # (named in the message as it was given)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")] if len(value) <= 200 else None
    try:
        lo, hi, step = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, given, allowed) from None
    # NaN fails every comparison, so it is refused here too; the step's floor bounds
    # the grid at 1 000 thresholds per tuning run.
    if not (0 <= lo <= hi <= 1 and 0.001 <= step <= 1):
        raise ConfigError(key, given, allowed)
    return lo, hi, step


def callable_or_none(key: str, value: Any) -> Any:
    if value is None or callable(value):
        return value
    raise ConfigError(key, value, "a callable or none")


def _redis_url(url: urllib.parse.SplitResult | None, *, cluster: bool = False) -> bool:
    """A URL redis-py's ``from_url`` reads: a host (or a unix socket path) and a numeric
    database (none on a cluster)."""
    if url is None:
        return False
    if url.scheme == "unix":
        return bool(url.path)
    db = url.path.strip("/")
    return bool(url.hostname) and (db == "" or (db.isdigit() and len(db) <= 6 and
                                                not (cluster and db != "0")))


def _state_redis_url(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if not _redis_url(_url(value, ("redis", "rediss", "unix"))):
        raise ConfigError(key, value, "redis://host:port/db, rediss://... or "
                          "unix:///socket, or none")
    return str(value)


# instrument_sqlalchemy (read by pulsegate.autoinstrument) ---------------------------


def _is_engine(value: Any) -> bool:
    # Engine has .dialect, AsyncEngine .sync_engine; checked by shape so that the
    # configuration never imports SQLAlchemy.
    return hasattr(value, "sync_engine") or (hasattr(value, "dialect") and hasattr(value, "connect"))


def sqlalchemy_setting(key: str, value: Any) -> bool | tuple[Any, ...]:
    """The check of ``instrument_sqlalchemy``: a boolean (also "true"/"false" from the
    environment), one engine, or a list of engines (kept as a tuple)."""
    if _is_engine(value):
        return (value,)
    if isinstance(value, (list, tuple)):
        if value and all(_is_engine(v) for v in value):
            return tuple(value)
        raise ConfigError(key, value, "true, false, or a non-empty list of SQLAlchemy engines")
    try:
        return bool(_bool(key, value))
    except ConfigError:
        raise ConfigError(key, value, "true, false, or a list of SQLAlchemy engines") from None
