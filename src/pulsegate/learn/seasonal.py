"""Seasonal baselines: hour-of-day and hour-of-week profiles, switched on automatically.

Bounded memory: 24 + 168 slot means, whatever the traffic or the history length.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

DAY = 86400.0
HOUR = 3600.0

MODES = ("off", "daily", "weekly")


class SeasonalBaseline:
    r"""Removes the hour-of-day (or hour-of-week) profile from a series.

    For a value :math:`x` at epoch time :math:`t` (seconds, UTC plus ``utc_offset``):
    hour of day :math:`h = \lfloor t/3600 \rfloor \bmod 24`, hour of week
    :math:`w = \lfloor t/3600 \rfloor \bmod 168` (epoch day 0 was a Thursday; only the
    cycle matters).

    * slot means, exponentially weighted per slot:
      :math:`D_h \leftarrow D_h + \max(\eta, 1/n_h)\,(x - D_h)`, likewise :math:`W_w`;
      the global mean :math:`G` with rate :math:`\max(\gamma, 1/n)`;
    * the spread each profile leaves, judged *before* learning the value (an honest
      one-step-ahead test): :math:`e_G, e_D, e_W`, exponentially weighted means of
      :math:`|x - G|`, :math:`|x - D_h|`, :math:`|x - W_w|`;
    * ``mode="auto"``: the daily profile is switched on once ``min_days`` of history
      exist and :math:`e_D < g\,e_G` (it explains at least :math:`1-g` of the spread);
      the weekly one once ``min_weeks`` exist and :math:`e_W < g\,e_D`. With
      hysteresis: an active profile stays on until its error exceeds
      ``release`` :math:`\cdot` the alternative's (0.85), because flapping between
      modes makes the adjusted series jump. ``"daily"`` / ``"weekly"`` force a profile
      (still only after its minimum history); ``"off"`` passes values through;
    * adjusted value :math:`x - D_h + G` (or :math:`x - W_w + G`): the profile is
      removed and the level kept, so a forecast and its interval stay in the units of
      the series.
    """

    __slots__ = ("current", "day", "day_n", "err_day", "err_global", "err_week", "gain",
                 "gamma", "glob", "min_days", "min_weeks", "mode", "n", "rate", "release",
                 "span", "start", "utc_offset", "week", "week_n")

    def __init__(self, mode: str = "auto", *, rate: float = 0.05, gamma: float = 0.003,
                 min_days: float = 3.0, min_weeks: float = 3.0, gain: float = 0.6,
                 release: float = 0.85, utc_offset: float = 0.0) -> None:
        if mode not in ("auto", *MODES):
            raise ValueError("mode must be auto, off, daily or weekly")
        if not 0.0 < rate <= 1.0 or not 0.0 < gamma <= 1.0:
            raise ValueError("rate and gamma must be in (0, 1]")
        if not 0.0 < gain <= release <= 1.0:
            raise ValueError("need 0 < gain <= release <= 1")
        self.mode = mode
        self.rate = rate
        self.gamma = gamma
        self.min_days = min_days
        self.min_weeks = min_weeks
        self.gain = gain
        self.release = release
        self.current = "off"
        self.utc_offset = utc_offset
        # Flat typed arrays: ~3 KB per endpoint instead of ~8 KB of boxed floats.
        self.day = array("d", bytes(8 * 24))
        self.day_n = array("q", bytes(8 * 24))
        self.week = array("d", bytes(8 * 168))
        self.week_n = array("q", bytes(8 * 168))
        self.glob = 0.0
        self.err_global = self.err_day = self.err_week = 0.0
        self.n = 0
        self.start: float | None = None
        self.span = 0.0

    def active(self) -> str:
        """Which profile is applied now: ``off``, ``daily`` or ``weekly``."""
        return self.current

    def _switch(self) -> str:
        # Hysteresis: a profile switches on when it explains 1-gain of the spread and
        # off only when it explains less than 1-release; flapping between modes would
        # make the adjusted series jump, which is itself a false anomaly.
        if self.mode == "off" or self.start is None:
            return "off"
        span, cur = self.span, self.current
        days_ok = span >= self.min_days * DAY
        weeks_ok = span >= self.min_weeks * 7 * DAY
        if self.mode != "auto":
            if self.mode == "weekly" and weeks_ok:
                return "weekly"
            return "daily" if days_ok else "off"
        eg, ed, ew = self.err_global, self.err_day, self.err_week
        daily_on = days_ok and ed < (self.release if cur != "off" else self.gain) * eg
        if weeks_ok and daily_on and \
                ew < (self.release if cur == "weekly" else self.gain) * ed:
            return "weekly"
        return "daily" if daily_on else "off"

    def adjust(self, t: float, value: float) -> float:
        """Deseasonalise ``value`` observed at epoch time ``t``, then learn it."""
        if self.mode == "off":
            return value
        t += self.utc_offset
        if self.start is None:
            self.start = t
        hours = int(t // HOUR)
        h, w = hours % 24, hours % 168
        day, week, day_n, week_n = self.day, self.week, self.day_n, self.week_n
        n = self.n
        glob = self.glob if n else value
        dh, ww = day[h], week[w]
        nd, nw = day_n[h], week_n[w]
        eg = value - glob if value >= glob else glob - value
        ed = (value - dh if value >= dh else dh - value) if nd else eg
        ew = (value - ww if value >= ww else ww - value) if nw else ed
        n += 1
        self.n = n
        gamma = self.gamma
        g = gamma if n * gamma >= 1.0 else 1.0 / n
        self.err_global += g * (eg - self.err_global)
        self.err_day += g * (ed - self.err_day)
        self.err_week += g * (ew - self.err_week)
        self.span = t - self.start
        mode = self.current = self._switch()
        if mode == "weekly" and nw:
            out = value - ww + glob
        elif mode != "off" and nd:
            out = value - dh + glob
        else:
            out = value
        self.glob = glob + g * (value - glob)
        rate = self.rate
        nd += 1
        day_n[h] = nd
        day[h] = dh + (rate if rate * nd >= 1.0 else 1.0 / nd) * (value - dh)
        nw += 1
        week_n[w] = nw
        week[w] = ww + (rate if rate * nw >= 1.0 else 1.0 / nw) * (value - ww)
        return out

    def offset(self, t: float) -> float:
        """Profile minus level at epoch time ``t`` under the current mode (0 while off),
        without learning: ``value - offset(t)`` is what :meth:`adjust` would return."""
        mode = self.current
        if mode == "off":
            return 0.0
        hours = int((t + self.utc_offset) // HOUR)
        if mode == "weekly" and self.week_n[hours % 168]:
            return self.week[hours % 168] - self.glob
        if self.day_n[hours % 24]:
            return self.day[hours % 24] - self.glob
        return 0.0

    def expected(self, t: float) -> float | None:
        """The seasonal expectation at ``t`` (None while no profile is active)."""
        mode = self.active()
        hours = int((t + self.utc_offset) // HOUR)
        if mode == "weekly":
            return self.week[hours % 168]
        if mode == "daily":
            return self.day[hours % 24]
        return None

    # --- persistence -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"day": list(self.day), "day_n": list(self.day_n), "week": list(self.week),
                "week_n": list(self.week_n), "glob": self.glob, "n": self.n,
                "errors": [self.err_global, self.err_day, self.err_week],
                "start": self.start, "span": self.span, "current": self.current}

    def load_state(self, state: dict[str, Any]) -> None:
        try:
            day = [float(x) for x in state["day"]]
            week = [float(x) for x in state["week"]]
            day_n = [int(x) for x in state["day_n"]]
            week_n = [int(x) for x in state["week_n"]]
            errors = [float(x) for x in state["errors"]]
            glob, n, span = float(state["glob"]), int(state["n"]), float(state["span"])
            start = None if state["start"] is None else float(state["start"])
            current = str(state.get("current", "off"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent SeasonalBaseline state: {exc!r}") from None
        floats = [*day, *week, *errors, glob, span] + ([] if start is None else [start])
        if len(day) != 24 or len(day_n) != 24 or len(week) != 168 or len(week_n) != 168 \
                or len(errors) != 3 or n < 0 or min(day_n + week_n) < 0 \
                or min(errors) < 0 or span < 0 or not all(math.isfinite(v) for v in floats) \
                or current not in MODES:
            raise ValueError("inconsistent SeasonalBaseline state")
        self.day, self.week = array("d", day), array("d", week)
        self.day_n, self.week_n = array("q", day_n), array("q", week_n)
        self.err_global, self.err_day, self.err_week = errors
        self.glob, self.n, self.start, self.span = glob, n, start, span
        self.current = current
