"""Univariate online anomaly model: exponential-smoothing forecast + Z-score, with a
robust spread, an anomaly-likelihood stage and alarm suppression.

State is a dozen floats; every update is O(1) in time and memory.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

_sqrt = math.sqrt
_log = math.log
_erfc = math.erfc
_SQRT1_2 = 1.0 / math.sqrt(2.0)
# sqrt(pi/2): turns a mean absolute deviation into a standard deviation for a normal law.
_MAD_TO_SD = math.sqrt(math.pi / 2.0)
# Smallest tail probability the likelihood stage resolves: 1e-10 maps to score 1.
_TAIL_FLOOR = 1e-10
_LOG_TAIL_FLOOR = -math.log(_TAIL_FLOOR)


class Score(NamedTuple):
    """The model's verdict on one value.

    ``forecast`` is what the model expected before seeing the value, ``low``/``high`` the
    interval ``forecast ± threshold·σ``, ``z`` the signed standardised residual, ``score``
    the calibrated anomaly score in [0, 1] (after the likelihood and suppression stages),
    ``likelihood`` the probability that the recent residuals are *not* ordinary.
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

    For each value :math:`x_t` (before learning it):

    1. **Forecast** (simple exponential smoothing):
       :math:`f_t = f_{t-1} + \alpha\,(x_{t-1} - f_{t-1})`, :math:`f_1 = x_1`;
       residual :math:`r_t = x_t - f_t`.
    2. **Robust, floor-protected spread**: an exponentially weighted mean absolute
       deviation of Huber-clipped residuals,
       :math:`d_t = d_{t-1} + \beta\,(\min(|r_t|, c\,\sigma_{t}) - d_{t-1})` with
       :math:`c = 2k`, and
       :math:`\sigma_t = \max(\sqrt{\pi/2}\,d_{t-1},\ \sigma_{abs},\ \rho\,|f_t|,\ \phi\,s_t)`
       where :math:`s_t` is the slow mean absolute deviation of the values themselves
       around their slow mean (rate :math:`\gamma`). Clipping keeps one outlier from
       inflating :math:`\sigma`; the floors keep flat stretches from collapsing it.
    3. **Z-score and raw score**: :math:`z_t = r_t/\sigma_t` (``side`` keeps one sign),
       :math:`u_t = z_t^2/(z_t^2 + k^2)` -- 0.5 exactly at :math:`|z| = k`.
    4. **Anomaly likelihood**: how unusual the *recent* raw scores are against their own
       long history. Short mean :math:`m_t = m_{t-1} + \lambda_s(u_t - m_{t-1})`; long
       mean and variance :math:`\mu_t, v_t` with rate :math:`\max(\lambda_l, 1/t)`;
       :math:`q_t = (m_t - \mu_{t-1}) / \max(\sqrt{v_{t-1}}, \epsilon)`,
       likelihood :math:`L_t = \Phi(q_t)`, and the calibrated score
       :math:`p_t = \min(1, -\log_{10}(1 - L_t + 10^{-10}) / 10)`: 0.5 means a tail
       probability of :math:`10^{-5}`, 1 means :math:`10^{-10}`.
    5. **Suppression of repeated alarms**: a decaying memory of the scores already
       reported, :math:`M_t = \max(\delta M_{t-1}, p_t)`; the reported score is
       :math:`p_t` when :math:`p_t > \delta M_{t-1}` and 0 otherwise, so the rows that
       follow an alarm within one incident stay quiet unless the incident gets worse.
    6. **Level shifts**: the forecast follows a new level with time constant
       :math:`1/\alpha`; the long likelihood statistics absorb a sustained change within
       :math:`1/\lambda_l` values, so a persisting shift stops alarming.

    ``is_anomaly`` is ``score >= alarm`` once ``warmup`` values have been seen.
    Confidence :math:`100 \cdot \min(1, n/\text{warmup}) \cdot e^{-\sigma_t/\max(|f_t|, \sigma_{abs})}`.

    ``score(x)`` evaluates without learning; ``update(x)`` scores then learns.
    """

    __slots__ = ("alarm", "alpha", "beta", "decay", "floor_abs", "floor_rel", "floor_scale",
                 "gamma", "level", "lik_long", "lik_short", "lmean", "lvar", "mad", "memo",
                 "n", "short", "side", "slow", "slow_dev", "threshold", "warmup")

    def __init__(self, alpha: float = 0.3, threshold: float = 3.0, warmup: int = 30, *,
                 beta: float | None = None, floor_abs: float = 1e-6, floor_rel: float = 0.01,
                 side: str = "both", floor_scale: float = 0.05, gamma: float = 0.001,
                 lik_short: float = 0.2, lik_long: float = 0.001, decay: float = 0.99,
                 alarm: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if side not in ("both", "up", "down"):
            raise ValueError("side must be 'both', 'up' or 'down'")
        for name, rate in (("beta", beta), ("gamma", gamma), ("lik_short", lik_short),
                           ("lik_long", lik_long)):
            if rate is not None and not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0.0 <= decay < 1.0:
            raise ValueError("decay must be in [0, 1)")
        self.alpha = alpha
        self.beta = alpha if beta is None else beta
        self.threshold = threshold
        self.warmup = max(1, int(warmup))
        self.floor_abs = floor_abs
        self.floor_rel = floor_rel
        self.floor_scale = floor_scale
        self.gamma = gamma
        self.lik_short = lik_short
        self.lik_long = lik_long
        self.decay = decay
        self.alarm = alarm
        self.side = side
        self.n = 0
        self.level = 0.0
        self.mad = 0.0
        self.slow = 0.0
        self.slow_dev = 0.0
        self.short = 0.0
        self.lmean = 0.0
        self.lvar = 0.0
        self.memo = 0.0

    # --- verbs ----------------------------------------------------------------------

    def sigma(self) -> float:
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
        """Learn ``value`` (the score is computed anyway: the stages feed each other)."""
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
        sigma = self.sigma()
        r = value - f
        z = r / sigma
        side = self.side
        zs = z if side == "both" else (z if z > 0.0 else 0.0) if side == "up" else \
            (z if z < 0.0 else 0.0)
        z2 = zs * zs
        u = z2 / (z2 + k * k)
        # likelihood stage: the short mean of raw scores against their long history
        short = self.short + self.lik_short * (u - self.short)
        lmean, lvar = self.lmean, self.lvar
        sd = _sqrt(lvar)
        q = (short - lmean) / (sd if sd > 1e-3 else 1e-3)
        tail = 0.5 * _erfc(q * _SQRT1_2)
        p = _log(tail + _TAIL_FLOOR) / -_LOG_TAIL_FLOOR
        if p < 0.0:
            p = 0.0
        warm = n >= self.warmup
        if not warm:
            p = 0.0
        memo = self.memo * self.decay
        out = p if p > memo else 0.0
        if learn:
            absr = r if r >= 0.0 else -r
            clip = 2.0 * k * sigma
            self.mad += self.beta * ((absr if absr < clip else clip) - self.mad)
            self.level = f + self.alpha * r
            g = self.gamma if n * self.gamma >= 1.0 else 1.0 / (n + 1)
            dev = value - self.slow
            self.slow += g * dev
            self.slow_dev += g * ((dev if dev >= 0.0 else -dev) - self.slow_dev)
            self.short = short
            w = self.lik_long if n * self.lik_long >= 1.0 else 1.0 / n
            d = u - lmean
            self.lmean = lmean + w * d
            self.lvar = (1.0 - w) * (lvar + w * d * d)
            self.memo = memo if memo > p else p
            self.n = n + 1
        lvl = f if f >= 0.0 else -f
        conf = 100.0 * min(1.0, n / self.warmup) * math.exp(
            -sigma / (lvl if lvl > self.floor_abs else self.floor_abs))
        return Score(value, f, z, out, warm and out >= self.alarm, conf, f - k * sigma,
                     f + k * sigma, 1.0 - tail)

    # --- persistence -----------------------------------------------------------------

    _STATE = ("n", "level", "mad", "slow", "slow_dev", "short", "lmean", "lvar", "memo")

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state(self, state: dict[str, Any]) -> None:
        try:
            n = int(state["n"])
            vals = {name: float(state[name]) for name in self._STATE[1:]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent AnomalyModel state: {exc}") from None
        if n < 0 or not all(math.isfinite(v) for v in vals.values()) or \
                any(vals[name] < 0 for name in ("mad", "slow_dev", "short", "lmean", "lvar",
                                                "memo")) or \
                vals["short"] > 1.0 or vals["lmean"] > 1.0 or vals["memo"] > 1.0:
            raise ValueError("inconsistent AnomalyModel state")
        self.n = n
        for name, v in vals.items():
            setattr(self, name, v)
