"""Univariate online anomaly model: exponential-smoothing forecast + Z-score.

State is a handful of floats; every update is O(1) in time and memory.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class Score(NamedTuple):
    """The model's verdict on one value.

    ``forecast`` is what the model expected before seeing the value, ``low``/``high`` the
    interval ``forecast ± threshold·σ``, ``z`` the signed standardised residual.
    """

    value: float
    forecast: float
    z: float
    score: float
    is_anomaly: bool
    confidence: float
    low: float
    high: float


class AnomalyModel:
    r"""Exponential smoothing with an exponentially weighted, floor-protected spread.

    For each value :math:`x_t`:

    * forecast (simple exponential smoothing, level before the update)
      :math:`f_t = f_{t-1} + \alpha\,(x_{t-1} - f_{t-1})`, with :math:`f_1 = x_1`;
    * residual :math:`r_t = x_t - f_t`;
    * spread, the exponentially weighted mean square of residuals
      :math:`v_t = (1-\beta)\,v_{t-1} + \beta\,r_t^2` and
      :math:`\sigma_t = \max(\sqrt{v_{t-1}},\ \sigma_{abs},\ \rho\,|f_t|)` -- the two
      floors keep a flat series from collapsing :math:`\sigma` to 0 (which would make
      every tiny change infinitely surprising);
    * :math:`z_t = r_t / \sigma_t` (``side="up"`` keeps only positive deviations);
    * score :math:`s_t = z_t^2 / (z_t^2 + k^2)` with :math:`k` the threshold, a smooth
      map to [0, 1) that equals 0.5 exactly at :math:`|z| = k`;
    * ``is_anomaly`` when :math:`|z_t| > k` once ``warmup`` values have been seen
      (before that the score is 0);
    * confidence :math:`100 \cdot \min(1, n/\text{warmup}) \cdot e^{-\sigma_t/\max(|f_t|, \sigma_{abs})}`:
      full when warmed up and the spread is small relative to the level.

    ``score(x)`` evaluates without learning; ``update(x)`` scores then learns.
    """

    __slots__ = ("alpha", "beta", "floor_abs", "floor_rel", "level", "n", "side",
                 "threshold", "var", "warmup")

    def __init__(self, alpha: float = 0.3, threshold: float = 3.0, warmup: int = 30, *,
                 beta: float | None = None, floor_abs: float = 1e-6, floor_rel: float = 0.01,
                 side: str = "both") -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if side not in ("both", "up", "down"):
            raise ValueError("side must be 'both', 'up' or 'down'")
        self.alpha = alpha
        self.beta = alpha if beta is None else beta
        self.threshold = threshold
        self.warmup = max(1, int(warmup))
        self.floor_abs = floor_abs
        self.floor_rel = floor_rel
        self.side = side
        self.n = 0
        self.level = 0.0
        self.var = 0.0

    # --- verbs ----------------------------------------------------------------------

    def sigma(self) -> float:
        lvl = self.level if self.level >= 0 else -self.level
        return max(math.sqrt(self.var), self.floor_abs, self.floor_rel * lvl)

    def score(self, value: float) -> Score:
        """Score ``value`` against the current state without learning from it."""
        if self.n == 0:
            return Score(value, value, 0.0, 0.0, False, 0.0, value, value)
        sigma = self.sigma()
        f = self.level
        z = (value - f) / sigma
        zs = z if self.side == "both" else (max(z, 0.0) if self.side == "up" else min(z, 0.0))
        k = self.threshold
        warm = self.n >= self.warmup
        s = zs * zs / (zs * zs + k * k) if warm else 0.0
        scale = max(abs(f), self.floor_abs)
        conf = 100.0 * min(1.0, self.n / self.warmup) * math.exp(-sigma / scale)
        return Score(value, f, z, s, warm and abs(zs) > k, conf, f - k * sigma, f + k * sigma)

    def update(self, value: float) -> Score:
        """Score ``value``, then learn it."""
        result = self.score(value)
        self.learn(value)
        return result

    def learn(self, value: float) -> None:
        if self.n == 0:
            self.level = value
        else:
            r = value - self.level
            self.var += self.beta * (r * r - self.var)
            self.level += self.alpha * r
        self.n += 1

    def forecast(self) -> float:
        return self.level

    # --- persistence -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "level": self.level, "var": self.var}

    def load_state(self, state: dict[str, Any]) -> None:
        n, level, var = int(state["n"]), float(state["level"]), float(state["var"])
        if n < 0 or var < 0 or not (math.isfinite(level) and math.isfinite(var)):
            raise ValueError("inconsistent AnomalyModel state")
        self.n, self.level, self.var = n, level, var
