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
 SHIFT_RATE, WRITE, RAMPED) = range(13)
PEAK_KEEP = 0.9  # the largest recent burst is forgotten by 10 % per burst


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
        if n > SHIFT_WARMUP:
            c[SHIFT_RATE] = max(0.0, c[SHIFT_RATE] + gap / self.fast_tau * (dev / d - self.rate_k))
        if c[SHIFT_RATE] > self.shift_rate:
            c[RAMPED] = 1.0
        elif c[RAMPED] and c[BURST] <= self.nominal_rate:
            c[RAMPED] = 0.0
        if (c[SHIFT_DIV] > SHIFT_DIV_H or c[SHIFT_ERR] > SHIFT_ERR_H
                or c[SHIFT_RATE] > self.shift_rate):
            c[SINCE] = now
            c[SHIFT_DIV] = c[SHIFT_ERR] = c[SHIFT_RATE] = 0.0
        sb = 1.0 / n if n <= 50 else 0.1 * _SLOW_BETA if now - c[SINCE] >= self.tau else _SLOW_BETA
        c[BASE_DIV] = bd + sb * (new_path - bd)
        c[BASE_RATE] += sb * d if dev > 0.0 else -sb * d
        c[SPREAD] = max(SPREAD_MIN, d * math.exp(sb if abs(dev) > d else -sb))
