"""The advice section (``config.advice``; ``config.advisor`` is the option that switches
it on): query, workload and capacity advice
(:mod:`pulsegate.advisor`, docs/advisor.md). Off by default; on, the gate attaches an
:class:`~pulsegate.advisor.Advisor` when it is built -- from keywords, Django's
``PULSEGATE`` dict, Flask's ``PULSEGATE_*`` keys or ``PULSEGATE_*`` environment
variables alike. ``Advisor(gate, ...)`` checks its keywords with the same declarations.

``advisor_database`` says where the query advisor gets its **own** connection: a URL
(``postgresql://``, ``sqlite:///path``, ``mysql://``/``mariadb://``), a Django
``DATABASES`` alias, or (from a settings object) a SQLAlchemy engine. A URL's password
never appears in an error message."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar

from pulsegate.config_checks import MAX_TEXT, ConfigError, _bool, _is_engine, number
from pulsegate.config_sections.base import DAY_S, HOUR_MS, WEEK_S, Section, option, refuse_unknown_keywords

#: URL scheme (before any ``+driver``) -> the advisor's dialect
DATABASE_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite",
                    "mysql": "mysql", "mariadb": "mysql"}
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")
_DATABASE = ("a database URL (postgresql://user@host/db, sqlite:///path, mysql://... or "
             "mariadb://...), a Django DATABASES alias ('default'), a SQLAlchemy engine, "
             "or none")


def without_password(value: str) -> str:
    """The URL as an error may show it: the password replaced by ``***``.

    >>> without_password("postgresql://app:s3cret@db:5432/shop")
    'postgresql://app:***@db:5432/shop'
    """
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:
        return "<a URL that does not parse>"
    if url.password is None:
        return value
    netloc = url.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(url._replace(netloc=f"{user}:***@{netloc[1]}"))


def database_dialect(value: str) -> str | None:
    """The dialect a URL names (None: not a URL of a known database)."""
    scheme = value.split("://", 1)[0].split("+", 1)[0].lower() if "://" in value else ""
    return DATABASE_SCHEMES.get(scheme)


def _database(key: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if _is_engine(value):
        return value
    if not isinstance(value, str) or len(value) > MAX_TEXT or any(
            ch.isspace() or ord(ch) < 32 for ch in value):
        raise ConfigError(key, "<not shown>" if isinstance(value, str) else value, _DATABASE)
    if "://" in value:
        if database_dialect(value) is None:
            raise ConfigError(key, without_password(value), _DATABASE)
        try:
            urllib.parse.urlsplit(value).port  # noqa: B018 -- a bad port raises ValueError
        except ValueError:
            raise ConfigError(key, without_password(value), _DATABASE) from None
        return value
    if not _ALIAS.fullmatch(value):
        raise ConfigError(key, value, _DATABASE)
    return value


@refuse_unknown_keywords("an option of config.advice (docs/configuration.md)")
@dataclass(frozen=True)
class AdvisorConfig(Section):
    """The advisor: query advice, workload patterns, capacity advice."""

    NAME: ClassVar[str] = "advice"

    advisor: bool = option(False, "Attach the advisor when the gate is built: workload "
                           "patterns and capacity advice; query advice too with "
                           "`advisor_database` (docs/advisor.md).", _bool)
    advisor_database: object = option(None, "Where the query advisor gets its own read-only "
                                   "connection: a URL (postgresql://, sqlite:///path, "
                                   "mysql://, mariadb://), a Django DATABASES alias, or a "
                                   "SQLAlchemy engine; none: no query advice.", _database)
    advisor_interval: float = option(60.0, "Seconds between the advisor's runs (EXPLAINs, "
                                     "capacity advice).", number(1, DAY_S))
    advisor_sample_interval: float = option(60.0, "Seconds between workload-pattern "
                                            "samples.", number(1, 3600))
    advisor_explains_per_minute: float = option(6.0, "EXPLAINs sent per minute, at most "
                                                "(a token bucket).", number(0.1, 600))
    advisor_statement_timeout_ms: int = option(250, "Statement and lock timeout of each "
                                               "EXPLAIN (ms).",
                                               number(1, 60_000, integer=True))
    advisor_top: int = option(10, "Fingerprints (by total time) the query advisor looks at "
                              "each run.", number(1, 1000, integer=True))
    advisor_recheck_seconds: float = option(3600.0, "Seconds before a fingerprint's plan is "
                                            "asked for again.", number(0, WEEK_S))
    advisor_min_table_rows: int = option(1000, "Tables with fewer rows never get an index "
                                         "finding.", number(0, 10**12, integer=True))
    advisor_in_list_min: int = option(50, "IN-list length from which `long_in_list` is "
                                      "reported.", number(2, 10**6, integer=True))
    advisor_wide_columns: int = option(12, "Table width (columns) from which reading every "
                                       "column is a `wide_select`.",
                                       number(2, 10_000, integer=True))
    advisor_target_latency_ms: float | None = option(
        None, "Latency target of the capacity advice (ms); none: `target_latency_ms`.",
        number(0.1, HOUR_MS, optional=True))
    advisor_quantile: float = option(0.99, "Share of requests the capacity advice keeps "
                                     "within the target.", number(0.5, 0.9999))
