r"""Per-request query features, for the endpoint model and for reports.

From one :class:`~pulsegate.queries.nplusone.Analysis` (so the statements are
fingerprinted once per request):

* ``query_count`` -- statements run (transaction control excluded);
* ``distinct_shapes`` -- distinct fingerprints;
* ``max_repeat`` -- the most statements of one shape;
* ``repeat_share`` -- :math:`\sum_{s: n_s \ge 2} t_s / \sum_s t_s`, the share of query
  time spent in shapes run more than once (by statement count when no time was
  measured). An endpoint that starts looping over a relationship moves this from ~0 to
  ~1, which the endpoint model scores against the endpoint's own history;
* ``write_count`` -- ``INSERT``/``UPDATE``/``DELETE`` statements;
* ``query_ms`` -- total statement time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pulsegate.queries.events import QueryEvent
from pulsegate.queries.nplusone import Analysis, NPlusOneDetector

__all__ = ["QueryFeatureExtractor", "QueryFeatures", "repeat_share"]


class QueryFeatures(NamedTuple):
    query_count: int
    distinct_shapes: int
    max_repeat: int
    repeat_share: float
    write_count: int
    query_ms: float


def repeat_share(analysis: Analysis) -> float:
    """Share of query time (or of statements, without timings) in repeated shapes."""
    total = analysis.total_ms
    rep = 0.0
    if total > 0.0:
        for count, ms in analysis.by_shape.values():
            if count >= 2:
                rep += ms
        return rep / total
    n = analysis.query_count
    if n == 0:
        return 0.0
    for count, _ in analysis.by_shape.values():
        if count >= 2:
            rep += count
    return rep / n


class QueryFeatureExtractor:
    """``extract(analysis)`` or ``from_events(events)`` -> :class:`QueryFeatures`."""

    def __init__(self, detector: NPlusOneDetector | None = None) -> None:
        self.detector = detector if detector is not None else NPlusOneDetector()

    def extract(self, analysis: Analysis) -> QueryFeatures:
        shapes = analysis.by_shape
        return QueryFeatures(
            analysis.query_count, len(shapes),
            int(max((v[0] for v in shapes.values()), default=0)),
            repeat_share(analysis), analysis.write_count, analysis.total_ms)

    def from_events(self, events: Sequence[QueryEvent]) -> QueryFeatures:
        return self.extract(self.detector.run(events))
