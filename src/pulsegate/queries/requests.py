"""The engine's side of query analysis: detections per request (cached on the request
context), the bounded list of recent detections, cross-request insights and the
rate-limited ``pulsegate.queries`` log.

The detector runs once per request: at finish; with ``headers="all"`` already when
the response starts (for ``x-ml-nplusone``), and then again at finish only if more
statements arrived after that (streamed bodies that query). A request with fewer than
two statements costs one integer comparison.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries import eager, served
from pulsegate.queries.features import repeat_share
from pulsegate.queries.fingerprint import FingerprintCache
from pulsegate.queries.insights import QueryInsights
from pulsegate.queries.nplusone import Detection, NPlusOneDetector

if TYPE_CHECKING:
    from pulsegate.config import Config
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Plugs

__all__ = ["AnalyzedDetections", "RequestQueries", "logger"]

logger = logging.getLogger("pulsegate.queries")


class AnalyzedDetections(list[Detection]):
    """A request's detections, remembering how many statements they cover and the
    request's ``repeat_share`` feature."""

    __slots__ = ("query_count", "repeat_share")

    def __init__(self, detections: list[Detection], query_count: int, share: float) -> None:
        super().__init__(detections)
        self.query_count = query_count
        self.repeat_share = share


#: The analysis of a request of 0 or 1 statements: nothing (shared, never mutated).
_NOTHING_IN = (AnalyzedDetections([], 0, 0.0), AnalyzedDetections([], 1, 0.0))


class RequestQueries:
    def __init__(self, config: Config, clock: Callable[[], float],
                 wall: Callable[[], float], plugs: Plugs | None = None) -> None:
        c = config.queries
        self.detector = NPlusOneDetector(
            c.nplusone_min_repeats, repeated_min=c.repeated_query_min,
            write_min=c.write_loop_min, min_duration_ms=c.nplusone_min_duration_ms,
            cache=FingerprintCache(c.fingerprint_cache_size),
            single_lazy_loads=c.single_lazy_loads)
        if plugs is not None:
            from pulsegate.plugins import Setting

            detector = self.detector

            def set_floor(value: float) -> None:
                detector.min_confidence = value

            # the n1-detector model's tuned threshold is the detector's confidence floor
            plugs.add_tunable("n1-detector", Setting(lambda: detector.min_confidence, set_floor))
        self.unused_eager_loads = c.unused_eager_loads
        if c.unused_eager_loads:
            eager.watch()
        self.insights = QueryInsights(c.max_fingerprints)
        #: Recent detections (dicts with ``endpoint`` and ``at``), newest last.
        self.recent: deque[dict[str, Any]] = deque(maxlen=config.model.max_recent)
        #: Detections made since start (``recent`` keeps only the newest ``max_recent``).
        self.detection_count = 0
        self.interval = c.query_log_interval
        self.max_keys = c.max_fingerprints
        self._logged: BoundedLRU[tuple[str, str], float] = BoundedLRU(c.max_fingerprints)
        self.clock = clock
        self.wall = wall

    def analyze(self, ctx: RequestContext) -> AnalyzedDetections:
        dets = ctx.detections
        n = ctx.query_count
        if isinstance(dets, AnalyzedDetections) and dets.query_count == n:
            return dets
        if n < 2 and not self.unused_eager_loads:
            # Every rule needs two statements (a lone one repeats nothing): skip the pass
            # (benchmarks/real_pages.py --bytecodes: ≈ 500 bytecodes on a one-query page),
            # and answer with a shared empty result (never mutated).
            out = _NOTHING_IN[n]
        else:
            analysis = self.detector.run(ctx.queries or ())
            dets = analysis.detections
            if self.unused_eager_loads:
                dets += eager.detections(ctx, self.detector.cache)
            out = AnalyzedDetections(dets, n, repeat_share(analysis))
        ctx.detections = out
        return out

    def finish(self, ctx: RequestContext, endpoint: str) -> AnalyzedDetections:
        out = self.analyze(ctx)
        if eager.watching:  # another gate or a capture may have turned recording on
            eager.forget(ctx)
        if out:
            self.detection_count += len(out)
            at = self.wall()
            self.insights.record(endpoint, out, at)
            for d in out:
                row = d.as_dict()
                row["endpoint"] = endpoint
                row["at"] = at
                self.recent.append(row)
            self._log(endpoint, out)
            if served.watchers:  # a test's capture is open (pulsegate.queries.served)
                served.deliver(endpoint, ctx.info.path, out)
        return out

    def _log(self, endpoint: str, detections: list[Detection]) -> None:
        now = self.clock()
        logged = self._logged
        for d in detections:
            key = (endpoint, d.fingerprint)
            last = logged.get(key)
            if last is not None and now - last < self.interval:
                continue
            logged.put(key, now)
            logger.warning("%s: %s", endpoint, d.describe(),
                           extra={"pulsegate_detection": d.as_dict(), "endpoint": endpoint})
