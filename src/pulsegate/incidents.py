"""Incidents: an endpoint changed (its windows kept sitting above its baseline).

Distinct from a request's anomaly score (``x-ml-anomaly-score``, 0-1: how unusual
*this one request* is against its endpoint's forecast): one slow request (a GC pause,
a cold cache) is an outlier, not an incident. An incident is the verdict of
:class:`~pulsegate.learn.incident.IncidentDetector` over several windows of requests.

``gate.incidents()`` returns the recent ones as :class:`Incident` (newest last).
``gate.incidents`` is also the bounded deque of plain dicts the exporters read (the
dashboard API, logs, the registry's alerts, persistence); each dict holds the same
fields as :class:`Incident`, plus ``id`` once the registry has given it one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from pulsegate.learn.anomaly import Score
from pulsegate.learn.incident import IncidentDetector


@dataclass(frozen=True)
class Incident:
    """One incident on one endpoint.

    ``start``: wall time (epoch s) the evidence began, the start of the first window
    since the detector's CUSUM last stood at 0; ``at``: when it was flagged.
    Magnitude: ``window_mean_ms`` (the flagged window's geometric mean latency) against
    ``expected_ms`` (the baseline), ``ratio = window_mean_ms / expected_ms`` and
    ``excess_ms = window_mean_ms - expected_ms``. Evidence: ``requests`` and
    ``windows`` behind the verdict (the episode's). ``score`` (0-1): the detector's
    CUSUM against its alarm line, 0.5 at the line. What made it unusual: ``metric``
    (``"latency"``, the window mean; ``"latency drift"``, a slow rise such as a leak,
    judged against the long reference, which ``expected_ms`` then is; ``"latency
    tail"``, the slowest requests;
    ``"error rate"``, failed requests) and ``direction`` (``"above"``: an endpoint
    that became faster, or fails less, is no incident); ``error_rate`` and
    ``expected_error_rate`` the flagged window's share of failed requests (status
    >= 500) and the one learnt before.

    >>> i = Incident("GET /slow", 100.0, 160.0, 80.0, 20.0, 4.0, 60.0, 900, 6, 0.6)
    >>> f"{i.endpoint}: {i.ratio:.1f}x (+{i.excess_ms:.0f} ms) over {i.requests} requests"
    'GET /slow: 4.0x (+60 ms) over 900 requests'
    """

    endpoint: str
    start: float
    at: float
    window_mean_ms: float
    expected_ms: float
    ratio: float
    excess_ms: float
    requests: int
    windows: int
    score: float
    metric: str = "latency"
    direction: str = "above"
    error_rate: float = 0.0
    expected_error_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Incident:
        """From a stored record; fields an older record lacks are derived or 0."""
        mean = float(d.get("window_mean_ms") or 0.0)
        expected = float(d.get("expected_ms") or 0.0)
        at = float(d.get("at") or 0.0)
        return cls(str(d.get("endpoint")), float(d.get("start", at)), at, mean, expected,
                   float(d.get("ratio", mean / expected if expected > 0 else 0.0)),
                   float(d.get("excess_ms", mean - expected)),
                   int(d.get("requests") or 0), int(d.get("windows") or 0),
                   float(d.get("score") or 0.0), str(d.get("metric") or "latency"),
                   str(d.get("direction") or "above"), float(d.get("error_rate") or 0.0),
                   float(d.get("expected_error_rate") or 0.0))


def _span(ms: float) -> str:
    """A duration in the unit that shows it: whole seconds from 10 s, else two
    significant figures in s or ms (a job started in a burst is expected every 0.3 ms,
    which whole seconds print as 0)."""
    if ms >= 10_000.0:
        return f"{ms / 1000:.0f} s"
    if ms >= 1000.0:
        return f"{ms / 1000:.2g} s"
    return f"{ms:.2g} ms"


def describe(d: dict[str, Any]) -> str:
    """What made a stored incident unusual, in words (logs, alerts):

    >>> describe({"metric": "error rate", "error_rate": 0.4, "expected_error_rate": 0.01,
    ...           "requests": 50, "windows": 3})
    'error rate above expected: 40.0% of requests failed against 1.0% (over 50 requests in 3 windows)'
    >>> describe({"window_mean_ms": 80.0, "expected_ms": 10.0, "ratio": 8.0, "requests": 10,
    ...           "windows": 2})
    'latency above expected: window mean 80.0 ms against 10.0 ms (8.0x, over 10 requests in 2 windows)'
    >>> describe({"metric": "latency drift", "window_mean_ms": 65.0, "expected_ms": 50.0,
    ...           "ratio": 1.3, "requests": 60, "windows": 9})
    'latency drift above expected: window mean 65.0 ms against 50.0 ms (1.3x, over 60 requests in 9 windows)'
    >>> describe({"metric": "starvation", "window_mean_ms": 7.2e6, "expected_ms": 3.6e6,
    ...           "ratio": 2.0, "requests": 12})
    'starvation: no run for 7200 s, one expected every 3600 s (2.0x, learnt from 12 starts)'
    >>> describe({"metric": "starvation", "window_mean_ms": 30_000.0, "expected_ms": 0.3,
    ...           "ratio": 1e5, "requests": 3000})
    'starvation: no run for 30 s, one expected every 0.3 ms (100000.0x, learnt from 3000 starts)'
    """
    metric = str(d.get("metric") or "latency")
    if metric == "starvation":  # a job that stopped running (pulsegate.jobs.tracker)
        return (f"starvation: no run for {_span(float(d.get('window_mean_ms') or 0.0))}, "
                f"one expected every {_span(float(d.get('expected_ms') or 0.0))} "
                f"({float(d.get('ratio') or 0.0):.1f}x, learnt from {d.get('requests') or 0} "
                "starts)")
    evidence = f"over {d.get('requests') or 0} requests in {d.get('windows') or 0} windows"
    if metric == "error rate":
        return (f"error rate {d.get('direction') or 'above'} expected: "
                f"{100 * float(d.get('error_rate') or 0.0):.1f}% of requests failed against "
                f"{100 * float(d.get('expected_error_rate') or 0.0):.1f}% ({evidence})")
    return (f"{metric} {d.get('direction') or 'above'} expected: window mean "
            f"{float(d.get('window_mean_ms') or 0.0):.1f} ms against "
            f"{float(d.get('expected_ms') or 0.0):.1f} ms "
            f"({float(d.get('ratio') or 0.0):.1f}x, {evidence})")


def incident_record(endpoint: str, at: float, verdict: Score,
                    detector: IncidentDetector) -> dict[str, Any]:
    """The stored record of an incident flagged now (``at``), from the window's verdict
    (log-latency value and forecast) and the detector's episode evidence."""
    mean = math.exp(verdict.value)
    expected = math.exp(verdict.forecast)
    return Incident(endpoint, at - detector.episode_seconds, at, mean, expected,
                    mean / expected, mean - expected, detector.episode_requests,
                    detector.episode_windows, verdict.score, detector.metric, "above",
                    detector.err_share, detector.err_expected).to_dict()


class IncidentLog(deque[dict[str, Any]]):
    """The recent incidents: a bounded deque of plain dicts (what exporters and
    persistence read), and callable: ``gate.incidents()`` gives them as
    :class:`Incident`, oldest first."""

    def __call__(self) -> list[Incident]:
        return [Incident.from_dict(d) for d in list(self) if isinstance(d, dict)]
