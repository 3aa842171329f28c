"""What one request did through instrumented I/O clients: cache reads and outbound calls.

The cache and outbound hooks find the request being served through
:func:`pulsegate.context.current` and keep its tally in the context's ``io`` slot, made
on the request's first instrumented call; a request that makes none never has one, so
the request path pays nothing when caches and outbound calls are not instrumented
(read it with :func:`tally_of`).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from pulsegate.context import current

__all__ = ["MAX_UPSTREAMS_PER_REQUEST", "IOTally", "installed", "request_tally", "tally_of"]

#: Upstreams kept apart in one request's tally; more fold into ``"(other)"``.
MAX_UPSTREAMS_PER_REQUEST = 16


class IOTally:
    """Counts of one request: cache hits and misses; outbound calls, errors and time,
    per upstream (``name -> [calls, ms]``)."""

    __slots__ = ("cache_hits", "cache_misses", "out_calls", "out_errors", "out_ms",
                 "upstreams")

    def __init__(self) -> None:
        self.cache_hits = 0
        self.cache_misses = 0
        self.out_calls = 0
        self.out_errors = 0
        self.out_ms = 0.0
        self.upstreams: dict[str, list[float]] = {}

    def outbound(self, upstream: str, ms: float, failed: bool) -> None:
        self.out_calls += 1
        self.out_ms += ms
        if failed:
            self.out_errors += 1
        per = self.upstreams.get(upstream)
        if per is None:
            if len(self.upstreams) >= MAX_UPSTREAMS_PER_REQUEST:
                upstream = "(other)"
                per = self.upstreams.setdefault(upstream, [0.0, 0.0])
            else:
                per = self.upstreams[upstream] = [0.0, 0.0]
        per[0] += 1
        per[1] += ms


def tally_of(ctx: Any) -> IOTally | None:
    """The tally of a request context (None: it made no instrumented call)."""
    return getattr(ctx, "io", None)


def request_tally() -> IOTally | None:
    """The tally of the request (or unit run) being served here, made on first use;
    None outside any."""
    ctx = current()
    if ctx is None:
        return None
    tally: IOTally | None = getattr(ctx, "io", None)
    if tally is None:
        tally = ctx.io = IOTally()
    return tally


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it): which client libraries
    ``caching``/``outbound`` instrumentation can patch."""
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
