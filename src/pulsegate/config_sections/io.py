"""The I/O section (``config.io``): caches and outbound calls watched per key pattern
and per upstream. Read by ``caches/`` and ``outbound/`` (docs/caches.md,
docs/outbound.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import _bool, number, strings
from pulsegate.config_sections.base import DAY_S, MILLION, Section, option, refuse_unknown_keywords


@refuse_unknown_keywords("an option of config.io (docs/configuration.md)")
@dataclass(frozen=True)
class IOConfig(Section):
    """Caches and outbound HTTP calls."""

    NAME: ClassVar[str] = "io"

    cache_monitoring: bool = option(False, "Count cache operations per cache and key pattern "
                                    "(Django's caches, every redis-py client) from when the "
                                    "middleware is built.", _bool)
    cache_max_patterns: int = option(500, "Cap on (cache, key pattern) entries kept; the least "
                                     "recently made is dropped first.", number(1, MILLION, integer=True))
    cache_tracked_keys: int = option(10_000, "Keys (by hash) remembered for reuse intervals and "
                                     "TTL advice.", number(1, MILLION, integer=True))
    cache_reuse_sample: int = option(4, "One key in N (by its hash) is tracked for reuse "
                                     "intervals, TTL advice and the kind of its misses (cold, "
                                     "expired, evicted); 1 tracks every key.",
                                     number(1, 1000, integer=True))
    cache_key_words: tuple[str, ...] = option((), "Words kept in key patterns besides those "
                                              "the loaded code spells (a key part that is "
                                              "neither is reported as {*}).", strings)
    cacheable_queries: bool = option(True, "With cache_monitoring: look for reads repeated "
                                     "across requests with the same parameters on rarely "
                                     "written tables.", _bool)
    outbound_monitoring: bool = option(False, "Watch outbound HTTP calls (httpx sync and async, "
                                       "requests) per upstream from when the middleware is "
                                       "built.", _bool)
    outbound_max_routes: int = option(50, "Route templates kept apart per upstream host; more "
                                      "fold into the host's \"*\".", number(1, 10_000, integer=True))
    outbound_health_halflife: float = option(30.0, "Seconds after which an upstream's health, "
                                             "unobserved, has come half way back to 1 (so "
                                             "pick_upstream tries a recovered host again).",
                                             number(0.1, DAY_S))
