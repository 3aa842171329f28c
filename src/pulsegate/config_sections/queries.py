"""The queries section (``config.queries``): SQL instrumentation and the N+1, repeated
query and write-loop detectors. Read by ``queries/``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import _bool, number
from pulsegate.config_sections.base import (
    HOUR_MS,
    MILLION,
    WEEK_S,
    Section,
    option,
    refuse_unknown_keywords,
)


@refuse_unknown_keywords("an option of config.queries (docs/configuration.md)")
@dataclass(frozen=True)
class QueriesConfig(Section):
    """SQL statements per request and the detectors run over them."""

    NAME: ClassVar[str] = "queries"

    query_analysis: bool = option(True, "Record SQL statements per request and detect N+1, "
                                  "repeated queries and write loops.", _bool)
    nplusone_min_repeats: int = option(5, "Statements of one shape from one call site (or "
                                       "relationship) that make an N+1.",
                                       number(2, MILLION, integer=True))
    nplusone_min_duration_ms: float = option(0.0, "Minimum total time (ms) of a group before "
                                             "it is reported; 0 reports fast N+1s too.",
                                             number(0, HOUR_MS))
    repeated_query_min: int = option(5, "Runs of the identical statement (same parameters) "
                                     "that make a repeated_query.", number(2, MILLION, integer=True))
    write_loop_min: int = option(5, "Single-row INSERT/UPDATE/DELETE of one shape that make "
                                 "a write_loop.", number(2, MILLION, integer=True))
    max_queries_per_request: int = option(10_000, "Statements kept per request for analysis "
                                          "(all are counted).", number(1, MILLION, integer=True))
    query_log_interval: float = option(300.0, "Seconds between two log lines for the same "
                                       "(endpoint, fingerprint) detection.", number(0, WEEK_S))
    fingerprint_cache_size: int = option(4096, "LRU size of the SQL fingerprint cache (keyed "
                                         "by raw statement text).", number(1, MILLION, integer=True))
    capture_call_sites: bool = option(True, "Record the application call site of each "
                                      "statement (a cheap frame walk).", _bool)
    max_fingerprints: int = option(1000, "LRU cap on per-fingerprint query insights kept "
                                   "across requests.", number(1, MILLION, integer=True))
    unused_eager_loads: bool = option(False, "Also report eager loads nothing read in the "
                                      "request (unused_eager_load).", _bool)
    single_lazy_loads: bool = option(False, "nplusone's N+1 rule instead of django-zeal's: one "
                                     "lazy relationship load of an instance fetched by a list "
                                     "form (.all(), iteration) is an N+1, even with one row.",
                                     _bool)
