"""Univariate online anomaly model: exponential-smoothing forecast + Z-score, with a
robust spread, an anomaly-likelihood stage and alarm suppression.

State is a dozen floats; every update is O(1) in time and memory.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from pulsegate.learn.seasonal import SeasonalBaseline

_log = math.log
_log2 = math.log2
# sqrt(pi/2): turns a mean absolute deviation into a standard deviation for a normal law.
_MAD_TO_SD = math.sqrt(math.pi / 2.0)
#: Surprise levels of the likelihood stage, and the prior P(|Z| >= level) of a normal law.
LEVELS = (2.0, 4.0, 8.0, 16.0, 32.0)
PRIOR = (0.0455, 6.3e-5, 0.0, 0.0, 0.0)


def _rarity(counts: list[float], norm: float, c: float, eps: float, scale: float) -> float:
    """Rarity in [0, 1] of surprise ``c`` under the exceedance frequencies
    ``counts[j] / norm``."""
    if c < 2.0:
        return 0.0
    j = 4 if c >= 32.0 else 3 if c >= 16.0 else 2 if c >= 8.0 else 1 if c >= 4.0 else 0
    p = counts[j] / norm
    frac = _log2(c / LEVELS[j])
    r = (-_log(p if p > eps else eps) + (frac if frac < 1.0 else 1.0)) / scale
    return r if r < 1.0 else 1.0


def _count(counts: list[float], c: float, inc: float) -> None:
    """Add ``inc`` to the count of every level ``c`` reaches (usually none)."""
    if c >= 2.0:
        counts[0] += inc
        if c >= 4.0:
            counts[1] += inc
            if c >= 8.0:
                counts[2] += inc
                if c >= 16.0:
                    counts[3] += inc
                    if c >= 32.0:
                        counts[4] += inc




class Score(NamedTuple):
    """The model's verdict on one value.

    ``forecast`` is what the model expected before seeing the value, ``low``/``high`` the
    interval ``forecast ± threshold·σ``, ``z`` the signed standardised residual, ``score``
    the calibrated anomaly score in [0, 1] (after the likelihood and suppression stages),
    ``likelihood`` the rarity of the surprise before alarm suppression (see step 4).
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
    3. **Surprises**: short-term :math:`c^f_t = |z_t|` and level
       :math:`c^s_t = |x_t - m_{t-1}| / \max(\sqrt{\pi/2}\,s_{t-1}, \sigma_{abs})`
       (``side`` keeps only the chosen sign of both).
    4. **Likelihood: the surprise against its own history.** For each surprise, the
       exponentially weighted frequencies with which it reached the levels
       :math:`L = 2, 4, 8, 16, 32`:
       :math:`F_j \leftarrow F_j + w\,(\mathbb 1[c \ge L_j] - F_j)`,
       :math:`w = \max(\lambda, 1/(n + n_0))`, starting from the normal law's tails
       :math:`P(|Z| \ge L_j)` weighted as :math:`n_0` observations. With :math:`j` the
       highest level :math:`c` reaches, the rarity is
       :math:`\ell(c) = \min(1, [-\ln\max(F_j, \epsilon) + \min(1, \log_2(c/L_j))]
       / -\ln\epsilon)` (the second term orders surprises within one level) --
       about :math:`-\log_{10} P / 4` for :math:`\epsilon = 10^{-4}`: 0.5 means a
       surprise this series shows about once in a hundred values, 1 one it has (almost)
       never shown. ``likelihood`` is
       :math:`\max(\ell(c^f), \ell(c^s))`, and 0 unless some surprise exceeds :math:`k`
       (the promised :math:`|z| > k` stays necessary). A spiky series and a smooth one
       thus share one threshold: what counts is how rare the surprise is *for this
       series*.
    5. **Suppression of repeated alarms**: a decaying memory of the scores already
       reported, :math:`M_t = \max(\delta M_{t-1}, \ell_t)`; the reported ``score`` is
       :math:`\ell_t` when :math:`\ell_t > \delta M_{t-1}` and 0 otherwise, so the rows
       that follow an alarm within one incident stay quiet unless it gets worse. As
       rarity saturates at 1, a surprise at least ``realarm`` (2) times every one scored
       lately (remembered and decaying likewise) also re-alarms: a clearly larger
       event is never silenced by a smaller one before it.
    6. **Level shifts**: the forecast follows a new level with time constant
       :math:`1/\alpha` and the slow mean with :math:`1/\gamma`; suppression keeps
       the shift to one alarm while they catch up.
    7. **Silence**: a value within 5 % of zero where clear activity is expected
       (:math:`E = m + \text{seasonal offset} > 4\sqrt{\pi/2}\,s`) extends a run; the
       ``silence``-th value of a run (3; 0 switches it off) has likelihood 1: a
       counter that drops to zero is an outage even if its first row looked like
       the dips before it. ``side="up"`` never judges silence.

    ``is_anomaly`` is ``score >= alarm`` (default 0.57: the threshold every
    leave-one-category-out fold of ``benchmarks/nab.py --heldout`` chooses, 0.565-0.579,
    on the categories it does not score) once ``warmup`` values have been
    seen; ``low``/``high`` are :math:`f_t \pm k\sigma_t`. Confidence
    :math:`100 \cdot \min(1, n/\text{warmup}) \cdot e^{-\sigma_t/\max(|f_t|, \sigma_{abs})}`.

    ``score(x)`` evaluates without learning; ``update(x)`` scores then learns.
    """

    __slots__ = ("alarm", "alpha", "beta", "counts_fast", "counts_slow", "decay",
                 "floor_abs", "floor_rel", "floor_scale", "gamma", "level", "mad",
                 "memo", "memo_surprise", "n", "norm", "prior_weight", "quiet_run",
                 "rarity_floor", "rarity_rate", "rarity_scale", "realarm", "rejected",
                 "seasonal", "seasonality", "side", "silence", "slow", "slow_dev",
                 "threshold", "warmup")

    def __init__(self, alpha: float = 0.3, threshold: float = 3.0, warmup: int = 30, *,
                 beta: float = 0.01, floor_abs: float = 1e-6, floor_rel: float = 0.0,
                 side: str = "both", floor_scale: float = 0.3, gamma: float = 0.01,
                 rarity_rate: float = 0.0005, rarity_floor: float = 1e-4,
                 prior_weight: int = 100, decay: float = 0.9985, alarm: float = 0.57,
                 seasonality: str = "auto", realarm: float = 2.0, silence: int = 3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        if side not in ("both", "up", "down"):
            raise ValueError("side must be 'both', 'up' or 'down'")
        for name, rate in (("beta", beta), ("gamma", gamma), ("rarity_rate", rarity_rate)):
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0.0 < rarity_floor < 1.0:
            raise ValueError("rarity_floor must be in (0, 1)")
        if not 0.0 <= decay < 1.0:
            raise ValueError("decay must be in [0, 1)")
        if not 0.0 < alarm <= 1.0:
            raise ValueError("alarm must be in (0, 1]")
        if realarm < 1.0:
            raise ValueError("realarm must be >= 1")
        if silence < 0:
            raise ValueError("silence must be >= 0 (0: off)")
        if seasonality not in ("auto", "daily", "weekly", "off"):
            raise ValueError("seasonality must be auto, daily, weekly or off")
        self.alpha = alpha
        self.beta = beta
        self.threshold = threshold
        self.warmup = max(1, int(warmup))
        self.floor_abs = floor_abs
        self.floor_rel = floor_rel
        self.floor_scale = floor_scale
        self.gamma = gamma
        self.rarity_rate = rarity_rate
        self.rarity_floor = rarity_floor
        self.rarity_scale = -math.log(rarity_floor)
        self.prior_weight = max(0, int(prior_weight))
        self.decay = decay
        self.alarm = alarm
        self.side = side
        self.seasonality = seasonality
        #: Hour-of-day/week profile, created by the first value given a timestamp.
        self.seasonal: SeasonalBaseline | None = None
        self.n = 0
        self.level = 0.0
        self.mad = 0.0
        self.slow = 0.0
        self.slow_dev = 0.0
        self.memo = 0.0
        #: the largest surprise scored lately (decaying as ``memo`` does)
        self.memo_surprise = 0.0
        self.realarm = realarm
        #: consecutive values near zero where activity is expected (step 7)
        self.quiet_run = 0
        #: values refused (NaN, infinite): counted, never scored or learnt
        self.rejected = 0
        self.silence = int(silence)
        prior = list(PRIOR) if self.prior_weight else [0.0] * len(LEVELS)
        # Exceedance frequencies F_j = counts[j] / norm: scaling ``norm`` up by 1/(1-w)
        # each update decays every frequency at once, so a value that reaches no level
        # (nearly all of them) costs no per-level work.
        self.counts_fast = list(prior)
        self.counts_slow = list(prior)
        self.norm = 1.0

    # --- verbs ----------------------------------------------------------------------

    def sigma(self) -> float:
        """Spread of the one-step forecast error (step 2)."""
        lvl = self.level if self.level >= 0 else -self.level
        return max(_MAD_TO_SD * self.mad, self.floor_abs, self.floor_rel * lvl,
                   self.floor_scale * self.slow_dev)

    def forecast(self, at: float | None = None) -> float:
        """The next value expected (at epoch time ``at``, with the seasonal profile)."""
        sb = self.seasonal
        return self.level + (sb.offset(at) if sb is not None and at is not None else 0.0)

    def score(self, value: float, at: float | None = None) -> Score:
        """Score ``value`` (observed at epoch seconds ``at``, optional) against the
        current state without learning from it."""
        return self._step(value, False, at)

    def update(self, value: float, at: float | None = None) -> Score:
        """Score ``value`` (observed at epoch seconds ``at``, optional), then learn it.
        With timestamps the hour-of-day/week profile is removed first (``seasonality``,
        see :class:`~pulsegate.learn.seasonal.SeasonalBaseline`); forecast and interval
        are reported in the series' own units."""
        return self._step(value, True, at)

    def learn(self, value: float, at: float | None = None) -> None:
        """Learn ``value`` (through the scoring path: the stages feed each other)."""
        self._step(value, True, at)

    def _step(self, value: float, learn: bool, at: float | None = None) -> Score:
        raw = value
        if value - value != 0.0:  # NaN or ±inf: never learnt, it would poison the state
            self.rejected += 1
            f = self.level
            return Score(raw, f, 0.0, 0.0, False, 0.0, f, f, 0.0)
        shift = 0.0
        if at is not None and self.seasonality != "off":
            sb = self.seasonal
            if sb is None:
                sb = self.seasonal = SeasonalBaseline(self.seasonality)
            if learn:
                value = sb.adjust(at, raw)
                shift = raw - value
            else:
                shift = sb.offset(at)
                value = raw - shift
        n = self.n
        if n == 0:
            if learn:
                self.level = self.slow = value
                self.n = 1
            return Score(raw, raw, 0.0, 0.0, False, 0.0, raw, raw, 0.0)
        f = self.level
        k = self.threshold
        fabs = self.floor_abs
        lvl = f if f >= 0.0 else -f
        sigma = _MAD_TO_SD * self.mad
        floor = self.floor_scale * self.slow_dev
        if floor > sigma:
            sigma = floor
        floor = self.floor_rel * lvl
        if floor > sigma:
            sigma = floor
        if fabs > sigma:
            sigma = fabs
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
        cf = a / sigma
        cs = b / (sd if sd > fabs else fabs)
        # likelihood stage: how rare each surprise is for this series
        eps, scale = self.rarity_floor, self.rarity_scale
        lik = 0.0
        if cf > k or cs > k:
            lik = _rarity(self.counts_fast, self.norm, cf, eps, scale)
            ls = _rarity(self.counts_slow, self.norm, cs, eps, scale)
            if ls > lik:
                lik = ls
        # silence: a run of values near zero where clear activity is expected
        expect = self.slow + shift
        if self.silence and side != "up" and expect > 4.0 * sd and \
                (raw if raw >= 0.0 else -raw) <= 0.05 * expect:
            run = self.quiet_run + 1
            if run == self.silence:
                lik = 1.0
        else:
            run = 0
        warm = n >= self.warmup
        if not warm:
            lik = 0.0
        # suppression stage: quiet unless worse than what was already reported
        decay = self.decay
        memo = self.memo * decay
        surprise = cf if cf > cs else cs
        memo_c = self.memo_surprise * decay
        # rarity saturates at 1: a clearly larger surprise re-alarms even when its
        # rarity cannot exceed the one remembered
        out = lik if lik > memo or (lik > 0.0 and surprise >= self.realarm * memo_c) else 0.0
        if learn:
            absr = r if r >= 0.0 else -r
            clip = 2.0 * k * sigma
            self.mad += self.beta * ((absr if absr < clip else clip) - self.mad)
            self.level = f + self.alpha * r
            g = self.gamma if n * self.gamma >= 1.0 else 1.0 / (n + 1)
            self.slow += g * dev
            self.slow_dev += g * ((dev if dev >= 0.0 else -dev) - self.slow_dev)
            m = n + self.prior_weight
            w = self.rarity_rate if m * self.rarity_rate >= 1.0 else 1.0 / m
            if w >= 1.0:  # no prior and a first observation: frequencies restart
                self.counts_fast = [0.0] * len(LEVELS)
                self.counts_slow = [0.0] * len(LEVELS)
                self.norm = norm = 1.0
            else:
                norm = self.norm = self.norm / (1.0 - w)
            _count(self.counts_fast, cf, w * norm)
            _count(self.counts_slow, cs, w * norm)
            if norm > 1e200:
                self._renormalise()
            self.memo = memo if memo > lik else lik
            self.quiet_run = run
            self.memo_surprise = surprise if lik > 0.0 and surprise > memo_c else memo_c
            self.n = n + 1
        conf = 100.0 * (n / self.warmup if n < self.warmup else 1.0) * math.exp(
            -sigma / (lvl if lvl > fabs else fabs))
        f += shift
        return Score(raw, f, z, out, warm and out >= self.alarm, conf, f - k * sigma,
                     f + k * sigma, lik)

    # --- persistence -----------------------------------------------------------------

    _STATE = ("n", "level", "mad", "slow", "slow_dev", "memo", "memo_surprise")

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self._STATE}
        out["freq_fast"] = [x / self.norm for x in self.counts_fast]
        out["freq_slow"] = [x / self.norm for x in self.counts_slow]
        out["seasonal"] = self.seasonal.state() if self.seasonal is not None else None
        return out

    def _renormalise(self) -> None:
        norm = self.norm
        self.counts_fast = [x / norm for x in self.counts_fast]
        self.counts_slow = [x / norm for x in self.counts_slow]
        self.norm = 1.0

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`; raises ValueError on a missing, non-finite or
        out-of-range field (the model is left untouched then)."""
        try:
            n = int(state["n"])
            # memo_surprise is newer than the format: an older state starts it at 0
            vals = {name: float(state[name] if name != "memo_surprise"
                                else state.get(name, 0.0)) for name in self._STATE[1:]}
            freqs = [[float(x) for x in state[name]] for name in ("freq_fast", "freq_slow")]
            seasonal = None
            if state.get("seasonal") is not None:
                seasonal = SeasonalBaseline(self.seasonality
                                            if self.seasonality != "off" else "auto")
                seasonal.load_state(state["seasonal"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent AnomalyModel state: {exc!r}") from None
        if n < 0 or not all(math.isfinite(v) for v in vals.values()) or \
                any(vals[name] < 0 for name in ("mad", "slow_dev", "memo", "memo_surprise")) or \
                vals["memo"] > 1.0 or \
                any(len(fq) != len(LEVELS) or not all(0.0 <= x <= 1.0 for x in fq)
                    for fq in freqs):
            raise ValueError("inconsistent AnomalyModel state")
        self.n = n
        for name, v in vals.items():
            setattr(self, name, v)
        self.counts_fast, self.counts_slow = freqs
        self.norm = 1.0
        if seasonal is not None:
            self.seasonal = seasonal
