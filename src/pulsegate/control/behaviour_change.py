"""A client's abrupt changes and bursts, the part of its behaviour profile
(:mod:`pulsegate.control.behaviour`) that makes trust lost fast: one flat array of
doubles per client (``Profile.change``, indexed by the names below) and the
:class:`ChangeDetector` that updates it on each finished request. The formulas are in
:meth:`ChangeDetector.shift` and :meth:`ChangeDetector.burst`.
"""

from __future__ import annotations

import math
from array import array

_SLOW_BETA = 0.02  # per-request weight of the client's own baselines
SHIFT_ERR_H = 1.0  # error CUSUM alarm level: two errors in a row
SHIFT_DIV_H = 2.0  # path CUSUM alarm level: 5 new paths in a row for a reader
SHIFT_ERR_K = 0.3  # error CUSUM reference: a 2 % background barely moves it
SHIFT_WARMUP = 30  # requests before the rate test (its baseline is learnt from them)
SHIFT_RATE_K = 2.0  # rate CUSUM reference, in the client's own spreads (see ChangeDetector.shift)
SPREAD_MIN = 0.1  # floor of a rate spread (log units): +-10 % is no change
SPREAD_INIT = 0.5
RATE_FLOOR = 0.25  # x nominal rate, added before the log: changes well under it are ignored
# Profile.change: the abrupt-change detector's fields, then the auth-failure streak and
# the burst history behind the learnt burst allowance
(SINCE, BURST, BASE_RATE, BASE_DIV, SHIFT_DIV, SHIFT_ERR, FAILS, RUN, PEAK, SPREAD,
 SHIFT_RATE, WRITE, RAMPED, GAP_MED, S_FAST, FAST_T0, LAST_T) = range(17)
PEAK_KEEP = 0.9  # the largest recent burst is forgotten by 10 % per burst
# The fast rate test (ChangeDetector.fast_rate): a CUSUM of the exponential log-likelihood
# ratio "the rate is FAST_RATIO x the habit" per request; alarm above FAST_H (at the
# default trust_shift_rate) once its run has lasted FAST_SPAN seconds (a page load's
# burst, 1-2 s in ratelimit_sim's mixes, is over by then)
DEFAULT_SHIFT_RATE = 4.0  # trust_shift_rate's default
FAST_RATIO = 4.0
FAST_H = 8.0
FAST_SPAN = 2.0
GAP_STEP = 1.0  # sign-step scale of the median log gap (log units)
LN2 = math.log(2.0)


class ChangeDetector:
    """The abrupt-change detector's settings: the nominal rate, the policy window
    ``tau`` (the fast rate's time constant is ``tau / 6``) and the rate CUSUM's alarm
    level ``shift_rate``."""

    def __init__(self, nominal_rate: float, tau: float, shift_rate: float) -> None:
        self.nominal_rate = nominal_rate
        self.tau = tau
        self.fast_tau = tau / 6.0
        #: rate alarm level of the rate CUSUM, in spreads x window / 6 (see shift)
        self.shift_rate = shift_rate
        self.rate_k = SHIFT_RATE_K
        self.fast_ratio = FAST_RATIO
        #: the fast test's alarm level scales with the CUSUM's (FAST_H at the default 4),
        #: so ``trust_shift_rate`` stays the one knob for "how sure before a rate alarm"
        self.fast_h = FAST_H * shift_rate / DEFAULT_SHIFT_RATE
        self.fast_span = FAST_SPAN

    def burst(self, c: array[float], gap: float) -> None:
        """Burst history: a burst is a run of requests closer than the nominal interval
        (faster than the bucket refills); ``PEAK <- max(run, 0.9 PEAK)`` when one ends,
        so the largest recent burst is remembered and fades by 10 % a burst."""
        if gap * self.nominal_rate < 1.0:
            c[RUN] += 1.0
        else:
            run = c[RUN]
            if run > 1.0:
                peak = PEAK_KEEP * c[PEAK]
                c[PEAK] = run if run > peak else peak
            c[RUN] = 1.0

    def fast_rate(self, c: array[float], now: float, gap: float) -> bool:
        """The fast rate test, for large abrupt steps: True when the client's recent
        requests make "its rate is now ``r`` times its habit" (``r`` = ``FAST_RATIO``, 4)
        likelier than the habit by ``e^h`` (``h`` = ``FAST_H`` x ``shift_rate`` / 4, 8 at
        the default), over a run of requests that has lasted ``FAST_SPAN`` (2 s) or more.

        The habit is the rate ``lam0 = ln 2 / g_med`` of a Poisson stream whose median gap
        is the client's own median gap ``g_med`` (``GAP_MED`` holds ``ln g_med``, learnt
        as :meth:`shift` learns its baselines), so a page-loader's habit is the rate
        inside its loads and its loads are no change. Each request, after a gap ``g``,
        adds the log-likelihood ratio of that gap under the two rates (CUSUM)::

            S_fast <- max(0, S_fast + ln r - (r - 1) * lam0 * g)

        A client stepping to ``q`` times its habit gains ``ln r - (r - 1) / q`` a request
        on average: 0.89 at 6x, 1.09 at 10x, 0.64 at 4x, nothing at 2x (left to the slow
        CUSUM). The run must last ``FAST_SPAN`` seconds (``now - t0``, ``t0`` the request
        before ``S_fast`` left 0): a page load of 150 requests in 1.5 s is over before.
        ``r``, ``h`` and the span were chosen leave-one-mix-out on ``ratelimit_sim.py
        --mixes`` (tuning seeds 11-12, see docs/dev-notes/issue-23.md).

        >>> det = ChangeDetector(1.0, 60.0, 4.0)
        >>> c = array("d", [0.0] * 17)
        >>> c[GAP_MED] = math.log(2.0)          # a reader: median gap 2 s (0.35 req/s)
        >>> t, alarms = 0.0, []
        >>> for i in range(1, 12):              # now a request every 0.5 s (~6x)
        ...     t += 0.5
        ...     if det.fast_rate(c, t, 0.5):
        ...         alarms.append(i)
        >>> alarms
        [10]
        """
        r = self.fast_ratio
        s = c[S_FAST]
        if s <= 0.0:
            c[FAST_T0] = now - gap
        s += math.log(r) - (r - 1.0) * LN2 * math.exp(-c[GAP_MED]) * gap
        if s > self.fast_h and now - c[FAST_T0] >= self.fast_span:
            c[S_FAST] = 0.0
            return True
        c[S_FAST] = s if s > 0.0 else 0.0
        return False

    def shift(self, c: array[float], n: int, now: float, gap: float, new_path: float,
              error: float) -> None:
        """Abrupt-change detector: restarts the client's clean stretch (``since``).

        Paths and errors, against the client's own slow baseline (per-request EWMA,
        weight 0.02), one CUSUM each per request::

            S_div <- max(0, S_div + new_path - base_div - max(0.1, (1 - base_div) / 2))
            S_err <- max(0, S_err + error - 0.3)

        Rate: ``x = ln(burst + nominal / 4)``, ``burst`` the request rate with time
        constant window / 6 (``nominal / 4`` so that changes well under the nominal rate
        do not count). Its baseline is the running median ``mu`` of ``x`` over the
        client's requests and its spread ``d`` the running median of ``|x - mu|`` (both
        by sign steps, so one odd request moves them by at most a step; ``d >= 0.1``).
        Evidence accrues per second, not per request, in units of ``d``::

            S_rate <- max(0, S_rate + (gap / (window / 6)) * ((x - mu) / d - k))   k = 2

        so a page load (a second of fast requests, then a long quiet gap whose low rate
        pays the evidence back) cannot build it up, and a client sustaining a rate
        ``k`` spreads above its habit can. ``change`` when ``S_div > 2``, ``S_err > 1``
        or ``S_rate > shift_rate`` (after ``SHIFT_WARMUP`` requests). A reader
        switching to new paths every request alarms after 5 requests, one that starts
        failing after 2 errors in a row, a reader going from 0.3 to 2 req/s within
        30-41 requests (``shift_rate`` = 4; a bursty user's load 4x its usual: none).
        The baselines are learnt with step ``1/n`` over the first 50 requests, then
        0.02, 10x slower once the client has been clean for a window (an
        established habit is a stable reference; a new one becomes the client's normal
        only after it has lasted).
        """
        x = math.log(c[BURST] + RATE_FLOOR * self.nominal_rate)
        if n == 1:
            c[BASE_DIV], c[BASE_RATE] = new_path, x
            return
        bd = c[BASE_DIV]
        k = max(0.1, (1.0 - bd) * 0.5)
        c[SHIFT_DIV] = max(0.0, c[SHIFT_DIV] + new_path - bd - k)
        c[SHIFT_ERR] = max(0.0, c[SHIFT_ERR] + error - SHIFT_ERR_K)
        d = c[SPREAD]
        dev = x - c[BASE_RATE]
        fast = False
        if n > SHIFT_WARMUP:
            c[SHIFT_RATE] = max(0.0, c[SHIFT_RATE] + gap / self.fast_tau * (dev / d - self.rate_k))
            fast = self.fast_rate(c, now, gap)
        if fast or c[SHIFT_RATE] > self.shift_rate:
            c[RAMPED] = 1.0
        elif c[RAMPED] and c[BURST] <= self.nominal_rate:
            c[RAMPED] = 0.0
        if fast:
            c[SINCE] = now
        if (c[SHIFT_DIV] > SHIFT_DIV_H or c[SHIFT_ERR] > SHIFT_ERR_H
                or c[SHIFT_RATE] > self.shift_rate):
            c[SINCE] = now
            c[SHIFT_DIV] = c[SHIFT_ERR] = c[SHIFT_RATE] = 0.0
        sb = 1.0 / n if n <= 50 else 0.1 * _SLOW_BETA if now - c[SINCE] >= self.tau else _SLOW_BETA
        lg = math.log(gap)
        if n == 2:
            c[GAP_MED] = lg
        else:
            c[GAP_MED] += sb * GAP_STEP if lg > c[GAP_MED] else -sb * GAP_STEP
        c[BASE_DIV] = bd + sb * (new_path - bd)
        c[BASE_RATE] += sb * d if dev > 0.0 else -sb * d
        c[SPREAD] = max(SPREAD_MIN, d * math.exp(sb if abs(dev) > d else -sb))
