"""One endpoint's behaviour: per-request smoothing of every metric, plus a windowed
:class:`~pulsegate.learn.incident.IncidentDetector` on log latency for incidents."""

from __future__ import annotations

import math
import warnings
from typing import Any

from pulsegate.learn.incident import IncidentDetector
from pulsegate.learn.metrics import (
    FLOORS,
    METRICS,
    MIN_EXCESS,
    NO_SCORE,
    QUERY_METRICS,
    TREND_ONLY,
    EndpointScore,
    transform,
)
from pulsegate.learn.seasonal import SeasonalBaseline

__all__ = ["FLOORS", "METRICS", "MIN_EXCESS", "NO_SCORE", "QUERY_METRICS", "TREND_ONLY",
           "EndpointModel", "EndpointScore", "transform"]

_log1p = math.log1p
_sqrt = math.sqrt
_exp = math.exp
# Built on every request: tuple.__new__ skips the NamedTuple's Python-level __new__.
_new_tuple = tuple.__new__
#: log(ms): over a day is a clock that jumped; the engine floors durations at 1 µs.
_ABSURD_HIGH = math.log(86_400_000.0)
_ABSURD_LOW = math.log(1e-3) - 1e-9
_MAX_LEVEL = 50.0  # a restored |level| past log(5e21): no measurement's (damaged, hostile)


class EndpointModel:
    r"""Per-request exponential smoothing of each metric, on log scales.

    Latency is :math:`\log(\text{ms})`; CPU time, query count and query time are
    :math:`\log(1+x)`; the allocation delta a signed :math:`\log(1+|x|)`. Request costs
    are multiplicative, so a doubling is the same surprise at 2 ms or at 2 s.

    For metric :math:`i` with level :math:`f_i` and mean-square residual :math:`v_i`:

    * :math:`r_i = x_i - f_i`, :math:`\sigma_i = \max(\sqrt{v_i}, \sigma^{floor}_i)`,
      :math:`z_i = r_i / \sigma_i`; the floor is widened to
      :math:`(T(\hat x_i + m_i) - T(\hat x_i))/k` so that a rise smaller than
      ``MIN_EXCESS`` (:math:`m_i`: 1 ms of latency, CPU or query time, 2 queries) is
      never anomalous however small the baseline;
    * per-metric score :math:`s_i = z_i^2/(z_i^2+k^2)` for :math:`z_i > 0` (only
      upward deviations matter: a faster request is not a problem), else 0;
    * request score :math:`\max_i s_i` over the scored metrics (memory is a trend
      metric: learned, never scored per request); anomalous when some :math:`z_i > k`
      after ``warmup`` requests;
    * learning: :math:`v_i \leftarrow v_i + \beta(r_i^2 - v_i)`,
      :math:`f_i \leftarrow f_i + \alpha r_i`, with :math:`\beta = 0.05` by default --
      slower than :math:`\alpha`, so the spread remembers about 20 requests of tail;
    * confidence :math:`100\cdot\min(1, n/w)\cdot e^{-\sigma_{lat}}`: with :math:`\sigma`
      in log space, :math:`e^{-\sigma}` is about one minus the typical relative error
      of the latency forecast.

    The metrics share one request count, so the state is ``2·len(metrics) + 1`` floats
    and an update is a handful of float operations per metric -- this runs on every
    request. Incident detection (the endpoint changed, rather than one slow request)
    weighs each window of ``window`` seconds by the requests it holds: see
    :class:`~pulsegate.learn.incident.IncidentDetector` and :meth:`roll`.
    """

    __slots__ = ("_k", "alpha", "beta", "excess", "floors", "floors2", "floors_k",
                 "incident", "k2", "key", "level", "metrics", "min_excess_ms", "n",
                 "queried", "referenced", "refresh_at", "rejected", "scored", "seasonal",
                 "var", "view", "warmup", "win_end", "win_start", "window")

    def __init__(self, alpha: float = 0.3, threshold: float = 3.0, warmup: int = 30,
                 metrics: tuple[str, ...] = METRICS, *, beta: float = 0.05,
                 window: float = 10.0, incident: IncidentDetector | None = None,
                 seasonal: SeasonalBaseline | None = None,
                 min_excess_ms: float = 1.0) -> None:
        self.alpha = alpha
        # The spread learns more slowly than the level (beta < alpha): a variance that
        # forgets within a handful of requests under-estimates heavy latency tails and
        # cries wolf on every jittery request.
        self.beta = beta
        self.min_excess_ms = min_excess_ms
        self.threshold = threshold  # also k2, the squared threshold the request path uses
        self.warmup = max(1, warmup)
        self.metrics = metrics
        # Trend-only metrics are learned but never raise a request's score: a single
        # request's allocation delta is too noisy to alarm on.
        self.scored = sum(1 for m in metrics if m not in TREND_ONLY)
        if any(m in TREND_ONLY for m in metrics[:self.scored]):
            raise ValueError("trend-only metrics must come after the scored ones")
        self.floors = [FLOORS[m] for m in metrics]
        # Squared, for the request path: it compares variances, never takes a root.
        self.floors2 = [f * f for f in self.floors]
        self.excess = [(m, MIN_EXCESS.get(m, 0.0) if m != "latency" else min_excess_ms)
                       for m in metrics]
        self.level = [0.0] * len(metrics)
        self.var = [0.0] * len(metrics)
        #: The threshold the floors were last computed with; 0 until the first learn,
        #: whose refresh computes every floor.
        self.floors_k = 0.0
        #: The request count at which the floors are next refreshed.
        self.refresh_at = 1
        self.n = 0
        self.rejected = 0  #: bad latencies refused (see update): counted, never learnt
        #: The endpoint's key ("GET /users/{id}"), set by the store that holds the model.
        self.key = ""
        #: Used since the store last looked (its CLOCK eviction spares it once).
        self.referenced = False
        #: False until a request with SQL has been learned: until then every query
        #: metric's level and spread are exactly zero, so a request without SQL may be
        #: given as a prefix that leaves them out (the engine does), and update skips
        #: the same zeros either way. Whoever feeds the model sets it; load_state too.
        self.queried = False
        #: (predicted ms, confidence, level f0, spread σ0) of latency, as of the last
        #: learn; (None, 0, 0, 1) before any.
        self.view: tuple[float | None, float, float, float] = (None, 0.0, 0.0, 1.0)
        self.window = window
        #: When the current window closes: the first request at or after it rolls the
        #: window (-inf: none open yet, the first request opens one).
        self.win_end = -math.inf
        self.win_start = -math.inf
        self.incident = incident if incident is not None else IncidentDetector(window)
        #: Removes the hour-of-day/week profile from the window means before the incident
        #: model sees them (``now`` plus its ``utc_offset`` must be epoch seconds).
        self.seasonal = seasonal

    @property
    def threshold(self) -> float:
        """k, the z-score above which a request is anomalous (the registry tunes it)."""
        return self._k

    @threshold.setter
    def threshold(self, k: float) -> None:
        self._k = k
        self.k2 = k * k

    def predict(self) -> tuple[float | None, float]:
        """(latency forecast in ms, or None before any data; confidence 0-100)."""
        view = self.view
        return (view[0], view[1]) if self.n else (None, 0.0)

    def _refresh_floors(self) -> None:
        # floor_i = max(FLOORS_i, (T(x̂_i + m_i) - T(x̂_i)) / k): a rise of m_i over the
        # current level x̂_i (in the metric's own unit) is exactly z = k. Levels drift
        # slowly, so this runs on every update during warm-up, then every 32nd.
        n = self.n
        self.refresh_at = n + 1 if n < self.warmup else (n | 31) + 1
        k = self.threshold
        # A metric never seen (no SQL, ever) keeps the floor computed at level 0 by the
        # first refresh, unless the threshold changed since (the registry tunes it).
        every = k != self.floors_k
        self.floors_k = k
        level, var, floors, floors2 = self.level, self.var, self.floors, self.floors2
        for i, (name, m) in enumerate(self.excess):
            if m <= 0.0:
                continue
            f = level[i]
            if f == 0.0 and var[i] == 0.0 and not every and i:
                continue
            if name == "latency":
                wide = _log1p(m / _exp(f)) / k
            else:
                native = _exp(f) - 1.0
                wide = (_log1p((native if native > 0.0 else 0.0) + m) - f) / k
            base = FLOORS[name]
            floors[i] = fl = wide if wide > base else base
            floors2[i] = fl * fl

    def _refresh_view(self) -> None:
        # The latency forecast and the confidence change only when the model learns, so
        # they are computed once then rather than on every read.
        n = self.n
        if n >= self.refresh_at:
            self._refresh_floors()
        f0 = self.level[0]
        sd0 = _sqrt(self.var[0])
        if sd0 < self.floors[0]:
            sd0 = self.floors[0]
        c = n / self.warmup
        self.view = (_exp(f0), 100.0 * (c if c < 1.0 else 1.0) * _exp(-sd0), f0, sd0)

    def score_latency(self, x: float) -> float:
        """The score of a log latency alone, without learning: the headers' case when
        the request ran no query yet. Reads the cached forecast view, builds nothing."""
        if self.n < self.warmup:
            return 0.0
        view = self.view
        r = x - view[2]
        if r <= 0.0:
            return 0.0
        z2 = r * r / (view[3] * view[3])
        k = self.threshold
        return z2 / (z2 + k * k)

    def update(self, latency: float, others: list[float | None] | None = None,
               learn: bool = True, now: float | None = None) -> tuple[float, bool, int, Any]:
        """The request path's verb: score a request against the model as it is, then
        learn it (unless ``learn`` is false). Returns ``(score, is_anomaly, driver,
        incident)``, ``driver`` the index of the metric that gave the score (-1: none).

        ``latency`` is the log latency, which every request has; ``others`` the values
        of ``self.metrics[1:]`` in order, on their log scales (see :func:`transform`),
        or None for a request that carries nothing else (most do). A ``None`` among
        them (a metric not sampled on this request) is skipped, and a shorter list
        scores a prefix of the metrics. The forecast the request was scored against is
        ``self.view`` as it was before the call (:meth:`observe` returns it all in one
        object, from one list of values).

        Given ``now`` (and learning), the latency also joins the incident window as
        :meth:`window_add` does, in the same call; ``incident`` is the incident model's
        verdict when that closed a window, else None.

        A latency that cannot be one (NaN, infinite, beyond a day or under 1 µs: a
        clock that jumped) is counted in ``rejected`` and changes nothing."""
        if not _ABSURD_LOW < latency < _ABSURD_HIGH:  # also false for NaN
            self.rejected += 1
            return 0.0, False, -1, None
        incident = None
        n = self.n
        if not n:
            values = [latency] if others is None else [latency, *others]
            if learn:
                for i, x in enumerate(values):
                    if x is not None:
                        self.level[i] = x
                self.n = 1
                self._refresh_view()
                if now is not None:
                    incident = self.window_add(now, latency)
            return 0.0, False, -1, incident
        k2 = self.k2
        level, var, floors2 = self.level, self.var, self.floors2
        a, b = self.alpha, self.beta
        # z² = r²/max(v, floor²) and s = z²/(z²+k²): the same as the docstring's
        # formulas, without a square root; r² serves the variance update too.
        # Latency, always present and always scored, in straight-line code: most
        # requests carry nothing else (the loop below is the same step for the rest).
        f = level[0]
        v = var[0]
        r = latency - f
        rr = r * r
        if r > 0.0:
            fl = floors2[0]
            zmax2 = rr / (v if v > fl else fl)
            best, driver = zmax2 / (zmax2 + k2), 0
        else:
            best, driver, zmax2 = 0.0, -1, 0.0
        if learn:
            var[0] = v0 = v + b * (rr - v)
            level[0] = f0 = f + a * r
        if others is not None:
            scored = self.scored
            i = 0
            for x in others:
                i += 1
                if x is None:
                    continue
                f = level[i]
                v = var[i]
                r = x - f
                if r == 0.0 and v == 0.0:
                    continue  # e.g. no queries, ever: nothing to score, nothing to learn
                rr = r * r
                if r > 0.0 and i < scored:
                    fl = floors2[i]
                    z2 = rr / (v if v > fl else fl)
                    s = z2 / (z2 + k2)
                    if s > best:
                        best, driver, zmax2 = s, i, z2
                if learn:
                    var[i] = v + b * (rr - v)
                    level[i] = f + a * r
        if learn:
            self.n = m = n + 1
            # The view (forecast, confidence) changes only here; refreshed in line
            # rather than by _refresh_view's call, as this runs on every request.
            if m >= self.refresh_at:
                self._refresh_floors()
            fl = floors2[0]
            sd0 = _sqrt(v0 if v0 > fl else fl)
            warmup = self.warmup
            self.view = (_exp(f0), (100.0 if m > warmup else 100.0 * (m / warmup))
                         * _exp(-sd0), f0, sd0)
            if now is not None:  # window_add
                # ended, or the clock went back over a window (a small step: concurrency)
                if not self.win_start - self.window <= now < self.win_end:
                    incident = self.roll(now, latency)
                else:
                    self.incident.add(latency)
        if n < self.warmup:
            return 0.0, False, -1, incident
        return best, zmax2 > k2, driver, incident

    def observe(self, values: list[float | None], *, learn: bool = True) -> EndpointScore:
        """:meth:`update`, returning the whole verdict: the score with its driving
        metric, and the latency forecast, interval, confidence and z the request was
        scored against."""
        x0 = values[0]
        if x0 is None:
            raise ValueError("the latency (the first value) is required")
        others = values[1:] or None
        if self.n == 0:
            self.update(x0, others, learn)
            return NO_SCORE
        pred, conf, f0, sd0 = self.view
        score, anomalous, driver, _ = self.update(x0, others, learn)
        lat_z = (x0 - f0) / sd0
        return _new_tuple(EndpointScore, (score, anomalous,
                                          self.metrics[driver] if driver >= 0 else None,
                                          conf, pred, self.threshold * sd0, lat_z))

    # --- incidents: windowed detection --------------------------------------------------

    def error(self) -> None:
        """The request just given to :meth:`update` failed (status >= 500): it counts
        in its window's error share (the incident detector's error evidence)."""
        self.incident.error()

    def window_add(self, now: float, log_latency: float) -> Any:
        """One request into the current window, as :meth:`update` given ``now`` does; when
        the window has ended, :meth:`roll` it and return the detector's verdict."""
        if not self.win_start - self.window <= now < self.win_end:
            return self.roll(now, log_latency)
        self.incident.add(log_latency)
        return None

    def roll(self, now: float, first: float | None = None) -> Any:
        """Close the current window (its verdict, or None if it held no request) and
        open the next at ``now`` with the request ``first``. With a seasonal profile the
        window is judged against the baseline plus the profile's offset at ``now``."""
        det = self.incident
        result = None
        if det.n_w:
            # how long the window really ran: a quiet endpoint's lasts until its next request
            seconds = now - self.win_start
            seconds = seconds if seconds < 24.0 * self.window else 24.0 * self.window
            if self.seasonal is None:
                result = det.close(seconds)
            else:
                mean = det.s1 / det.n_w
                result = det.close(seconds, mean - self.seasonal.adjust(now, mean))
        self.win_start = now
        self.win_end = now + self.window
        if first is not None:
            det.add(first)
        return result

    # --- persistence -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "n": self.n, "level": list(self.level),
                "var": list(self.var), "floors": list(self.floors),
                "incident": self.incident.state(),
                "seasonal": self.seasonal.state() if self.seasonal is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        names = list(state["metrics"])
        level, var = [float(x) for x in state["level"]], [float(x) for x in state["var"]]
        n = int(state["n"])
        if len(level) != len(names) or len(var) != len(names) or n < 0 or \
                any(v < 0 or not math.isfinite(v) for v in var) or \
                not all(abs(x) <= _MAX_LEVEL for x in level):
            raise ValueError("inconsistent EndpointModel state")
        for i, m in enumerate(self.metrics):
            if m in names:
                j = names.index(m)
                self.level[i], self.var[i] = level[j], var[j]
        self.n = n
        self.floors_k = 0.0  # the next refresh recomputes every floor
        warmup = self.warmup
        self.refresh_at = n if n <= warmup or not n & 31 else (n | 31) + 1
        self.queried = any(self.level[i] or self.var[i]
                           for i, m in enumerate(self.metrics) if m in QUERY_METRICS)
        # The spread floors follow the level only every few updates; restore them as
        # they were so a restarted model answers exactly as before (a merged fleet
        # state has none: derive them from the merged levels).
        floors = state.get("floors")
        if isinstance(floors, list) and len(floors) == len(names) and all(
                isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in floors):
            for i, m in enumerate(self.metrics):
                if m in names:
                    self.floors[i] = float(floors[names.index(m)])
            self.floors2 = [f * f for f in self.floors]
        elif n:
            self._refresh_floors()
        try:
            self.incident.load_state(state["incident"])
        except (KeyError, TypeError, ValueError) as exc:
            # an older format (the windowed AnomalyModel): incidents start cold
            warnings.warn(f"pulsegate: incident state of {self.key or 'an endpoint'} not "
                          f"restored ({exc}); incident detection starts cold",
                          RuntimeWarning, stacklevel=2)
            self.incident = IncidentDetector(self.window)
        if self.seasonal is not None and state.get("seasonal") is not None:
            self.seasonal.load_state(state["seasonal"])
        if n:
            self._refresh_view()
