"""Univariate online anomaly model: exponential-smoothing forecast + Z-score, with a
robust spread, an anomaly-likelihood stage and alarm suppression.

State is a dozen floats; every update is O(1) in time and memory.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

_sqrt = math.sqrt
# sqrt(pi/2): turns a mean absolute deviation into a standard deviation for a normal law.
_MAD_TO_SD = math.sqrt(math.pi / 2.0)


class Score(NamedTuple):
    """The model's verdict on one value.

    ``forecast`` is what the model expected before seeing the value, ``low``/``high`` the
    interval ``forecast ± threshold·σ``, ``z`` the signed standardised residual, ``score``
    the calibrated anomaly score in [0, 1] (after the likelihood and suppression stages),
    ``likelihood`` the normalised surprise before alarm suppression (see step 4).
    """

    value: float
    forecast: float
    z: float
    score: float
    is_anomaly: bool
    confidence: float
    low: float
    high: float
    likelihood: float = 0.0


class AnomalyModel:
    r"""Exponential smoothing + Z-score, hardened for real streams.

    For each value :math:`x_t` (scored before it is learnt):

    1. **Forecast** (simple exponential smoothing):
       :math:`f_t = f_{t-1} + \alpha\,(x_{t-1} - f_{t-1})`, :math:`f_1 = x_1`;
       residual :math:`r_t = x_t - f_t`.
    2. **Robust, floor-protected spread**: an exponentially weighted mean absolute
       deviation of Huber-clipped residuals,
       :math:`d_t = d_{t-1} + \beta\,(\min(|r_t|, 2k\sigma_t) - d_{t-1})`, and
       :math:`\sigma_t = \max(\sqrt{\pi/2}\,d_{t-1},\ \sigma_{abs},\ \rho\,|f_t|,\ \phi\,s_{t-1})`
       where :math:`s` is the slow mean absolute deviation of the values around their
       slow mean :math:`m` (both with rate :math:`\gamma`, or :math:`1/t` early on).
       Clipping keeps one outlier from inflating :math:`\sigma`; the floors keep a flat
       stretch from collapsing it. ``z`` is :math:`r_t/\sigma_t`.
    3. **Surprise**: the larger of the short-term and the level deviation,
       :math:`c_t = \max(w\,|z_t|,\ |x_t - m_{t-1}| / \max(\sqrt{\pi/2}\,s_{t-1}, \sigma_{abs}))`
       (``side`` keeps only the chosen sign of both).
    4. **Likelihood (normalisation by the score's own history)**: a decaying record of
       past surprises :math:`R_t = \max(\eta R_{t-1}, \min(c_t, c_{max}))` (after
       warm-up); the normalised surprise :math:`\tilde c_t = c_t / \max(1, \kappa R_{t-1})`
       is large only when the value is extreme *compared with the extremes this series
       usually shows*, so a spiky series and a smooth one share one threshold.
       ``likelihood`` is :math:`\ell_t = \tilde c_t^2 / (\tilde c_t^2 + k^2)`, 0.5 at
       :math:`\tilde c_t = k`.
    5. **Suppression of repeated alarms**: a decaying memory of the scores already
       reported, :math:`M_t = \max(\delta M_{t-1}, \ell_t)`; the reported ``score`` is
       :math:`\ell_t` when :math:`\ell_t > \delta M_{t-1}` and 0 otherwise, so the rows
       that follow an alarm within one incident stay quiet unless it gets worse.
    6. **Level shifts**: the forecast follows a new level with time constant
       :math:`1/\alpha` and the slow mean with :math:`1/\gamma`; suppression keeps
       the shift to one alarm while they catch up.

    ``is_anomaly`` is ``score >= alarm`` (default 0.5, i.e. :math:`\tilde c > k`) once
    ``warmup`` values have been seen; ``low``/``high`` are :math:`f_t \pm k\sigma_t`.
    Confidence :math:`100 \cdot \min(1, n/\text{warmup}) \cdot e^{-\sigma_t/\max(|f_t|, \sigma_{abs})}`.

    ``score(x)`` evaluates without learning; ``update(x)`` scores then learns.
    """

    __slots__ = ("alarm", "alpha", "beta", "c_max", "decay", "fast_weight", "floor_abs",
                 "floor_rel", "floor_scale", "gamma", "kappa", "level", "mad", "memo", "n",
                 "record", "record_decay", "side", "slow", "slow_dev", "threshold", "warmup")

    def __init__(self, alpha: float = 0.3, threshold: float = 3.0, warmup: int = 30, *,
                 beta: float = 0.01, floor_abs: float = 1e-6, floor_rel: float = 0.0,
                 side: str = "both", floor_scale: float = 0.3, gamma: float = 0.01,
                 fast_weight: float = 0.5, kappa: float = 0.6, record_decay: float = 0.9997,
                 c_max: float = 10.0, decay: float = 0.999, alarm: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if side not in ("both", "up", "down"):
            raise ValueError("side must be 'both', 'up' or 'down'")
        for name, rate in (("beta", beta), ("gamma", gamma)):
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        for name, d in (("decay", decay), ("record_decay", record_decay)):
            if not 0.0 <= d < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        if not 0.0 < alarm <= 1.0:
            raise ValueError("alarm must be in (0, 1]")
        self.alpha = alpha
        self.beta = beta
        self.threshold = threshold
        self.warmup = max(1, int(warmup))
        self.floor_abs = floor_abs
        self.floor_rel = floor_rel
        self.floor_scale = floor_scale
        self.gamma = gamma
        self.fast_weight = fast_weight
        self.kappa = kappa
        self.record_decay = record_decay
        self.c_max = c_max
        self.decay = decay
        self.alarm = alarm
        self.side = side
        self.n = 0
        self.level = 0.0
        self.mad = 0.0
        self.slow = 0.0
        self.slow_dev = 0.0
        self.record = 0.0
        self.memo = 0.0

    # --- verbs ----------------------------------------------------------------------

    def sigma(self) -> float:
        """Spread of the one-step forecast error (step 2)."""
        lvl = self.level if self.level >= 0 else -self.level
        return max(_MAD_TO_SD * self.mad, self.floor_abs, self.floor_rel * lvl,
                   self.floor_scale * self.slow_dev)

    def forecast(self) -> float:
        return self.level

    def score(self, value: float) -> Score:
        """Score ``value`` against the current state without learning from it."""
        return self._step(value, False)

    def update(self, value: float) -> Score:
        """Score ``value``, then learn it."""
        return self._step(value, True)

    def learn(self, value: float) -> None:
        """Learn ``value`` (through the scoring path: the stages feed each other)."""
        self._step(value, True)

    def _step(self, value: float, learn: bool) -> Score:
        n = self.n
        if n == 0:
            if learn:
                self.level = self.slow = value
                self.n = 1
            return Score(value, value, 0.0, 0.0, False, 0.0, value, value, 0.0)
        f = self.level
        k = self.threshold
        fabs = self.floor_abs
        sigma = self.sigma()
        r = value - f
        z = r / sigma
        dev = value - self.slow
        side = self.side
        if side == "both":
            a = r if r >= 0.0 else -r
            b = dev if dev >= 0.0 else -dev
        elif side == "up":
            a = r if r > 0.0 else 0.0
            b = dev if dev > 0.0 else 0.0
        else:
            a = -r if r < 0.0 else 0.0
            b = -dev if dev < 0.0 else 0.0
        sd = _MAD_TO_SD * self.slow_dev
        c = self.fast_weight * a / sigma
        cs = b / (sd if sd > fabs else fabs)
        if cs > c:
            c = cs
        # likelihood stage: against the decaying record of this series' own extremes
        record = self.record * self.record_decay
        norm = self.kappa * record
        cn = c / norm if norm > 1.0 else c
        c2 = cn * cn
        lik = c2 / (c2 + k * k)
        warm = n >= self.warmup
        if not warm:
            lik = 0.0
        # suppression stage: quiet unless worse than what was already reported
        memo = self.memo * self.decay
        out = lik if lik > memo else 0.0
        if learn:
            absr = r if r >= 0.0 else -r
            clip = 2.0 * k * sigma
            self.mad += self.beta * ((absr if absr < clip else clip) - self.mad)
            self.level = f + self.alpha * r
            g = self.gamma if n * self.gamma >= 1.0 else 1.0 / (n + 1)
            self.slow += g * dev
            self.slow_dev += g * ((dev if dev >= 0.0 else -dev) - self.slow_dev)
            if warm:
                cap = self.c_max
                self.record = record if record > c else (c if c < cap else cap)
            self.memo = memo if memo > lik else lik
            self.n = n + 1
        lvl = f if f >= 0.0 else -f
        conf = 100.0 * (n / self.warmup if n < self.warmup else 1.0) * math.exp(
            -sigma / (lvl if lvl > fabs else fabs))
        return Score(value, f, z, out, warm and out >= self.alarm, conf, f - k * sigma,
                     f + k * sigma, lik)

    # --- persistence -----------------------------------------------------------------

    _STATE = ("n", "level", "mad", "slow", "slow_dev", "record", "memo")

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`; raises ValueError on a missing, non-finite or
        out-of-range field (the model is left untouched then)."""
        try:
            n = int(state["n"])
            vals = {name: float(state[name]) for name in self._STATE[1:]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent AnomalyModel state: {exc!r}") from None
        if n < 0 or not all(math.isfinite(v) for v in vals.values()) or \
                any(vals[name] < 0 for name in ("mad", "slow_dev", "record", "memo")) or \
                vals["memo"] > 1.0:
            raise ValueError("inconsistent AnomalyModel state")
        self.n = n
        for name, v in vals.items():
            setattr(self, name, v)
