r"""Workload patterns per endpoint (and per job, or any unit a gate's baselines hold):
hourly and weekly traffic and latency profiles, peak hours, batch windows, daily and
weekly cycles.

Built off the request path from what the gate already learns. A scheduler job
(:meth:`Patterns.sample`, every ``interval`` seconds) reads each endpoint model's request
count ``n``: the difference since the last sample is that endpoint's traffic in the
current hour. When an hour ends, its rate (requests per hour, from the seconds actually
sampled in it; an hour sampled less than half is dropped) is folded into two Welford
accumulators: its hour of day :math:`h` and its hour of week :math:`w` (UTC plus the
baseline's offset; ``w // 24`` counts from Thursday, epoch day 0). Latency profiles are
the seasonal baseline's own slot means (:class:`~pulsegate.learn.seasonal.SeasonalBaseline`
``day``/``week``, window means of log-ms), shown as ms: :math:`e^{D_h}`.

From the 24 hourly means :math:`m_h` (hours with at least one observation):

* **peak hours**: :math:`m_h > \mu + \sigma` (:math:`\mu, \sigma` the mean and standard
  deviation of the :math:`m_h`), with confidence
  :math:`\Phi\big((m_h - \mu - \sigma) / (s_h/\sqrt{n_h})\big)`, the probability (normal
  approximation) that the hour's true mean is above the line, :math:`s_h` its standard
  deviation over :math:`n_h \ge 2` days (0 with one day);
* **daily cycle**: the share of variance the hour of day explains,
  :math:`R^2_d = \mathrm{Var}_h(m_h) / (\mathrm{Var}_h(m_h) + \overline{s_h^2})`; a cycle
  when :math:`R^2_d \ge 0.5` over at least 2 days;
* **weekly cycle**: the share of the hour-of-week means' variance left after removing
  the hour of day, less what sampling noise alone puts there,
  :math:`R^2_w = \max(0,\ \mathrm{Var}_w(m_w - m_{w \bmod 24}) - \overline{s_w^2/n_w})
  / \mathrm{Var}_w(m_w)`; a cycle when :math:`R^2_w \ge 0.2` over at least 2 weeks;
* **batch windows**: runs of at most 4 consecutive hours (wrapping midnight) whose mean
  is at least 5x the median hour: traffic that comes in a burst at a fixed time (an
  office peak, 2-3x, is a peak, not a batch).

Memory per endpoint: 3 x (24 + 168) floats, whatever the traffic.
"""

from __future__ import annotations

import math
import statistics
import threading
from array import array
from collections import deque
from typing import Any

HOUR = 3600.0
PEAK_WINDOW = 7 * 86400.0
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

__all__ = ["DAYS", "Patterns", "TrafficProfile"]


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def weekday(slot: int) -> int:
    """Monday = 0 for an hour-of-week slot (slot 0 is Thursday 00:00)."""
    return (slot // 24 + 3) % 7


class TrafficProfile:
    """One endpoint's hourly traffic: Welford accumulators per hour of day and of week."""

    __slots__ = ("cur_count", "cur_hour", "cur_seconds", "day", "last_n", "peak_rate",
                 "week")

    def __init__(self) -> None:
        # [n, mean, m2] per slot, flat
        self.day = array("d", bytes(8 * 3 * 24))
        self.week = array("d", bytes(8 * 3 * 168))
        self.cur_hour: int | None = None
        self.cur_count = 0.0
        self.cur_seconds = 0.0
        self.last_n: int | None = None
        self.peak_rate = 0.0  # highest requests/s over one sample, this hour-of-week cycle

    @staticmethod
    def _fold(acc: array[float], slot: int, value: float) -> None:
        i = 3 * slot
        n = acc[i] + 1.0
        delta = value - acc[i + 1]
        acc[i] = n
        acc[i + 1] += delta / n
        acc[i + 2] += delta * (value - acc[i + 1])

    def add(self, t: float, seconds: float, count: float) -> None:
        """``count`` requests during the ``seconds`` before epoch time ``t``."""
        hour = int(t // HOUR)
        if self.cur_hour is not None and hour != self.cur_hour:
            if self.cur_seconds >= HOUR / 2:
                rate = self.cur_count / self.cur_seconds * HOUR
                self._fold(self.day, self.cur_hour % 24, rate)
                self._fold(self.week, self.cur_hour % 168, rate)
            self.cur_count = self.cur_seconds = 0.0
        self.cur_hour = hour
        self.cur_count += count
        self.cur_seconds += seconds
        if seconds > 0:
            self.peak_rate = max(self.peak_rate, count / seconds)

    def slot(self, acc: array[float], i: int) -> tuple[int, float, float]:
        n = int(acc[3 * i])
        sd = math.sqrt(acc[3 * i + 2] / (n - 1)) if n >= 2 else 0.0
        return n, acc[3 * i + 1], sd

    def state(self) -> dict[str, Any]:
        return {"day": list(self.day), "week": list(self.week), "hour": self.cur_hour,
                "count": self.cur_count, "seconds": self.cur_seconds,
                "peak_rate": self.peak_rate}

    def load_state(self, data: dict[str, Any]) -> None:
        day = [float(x) for x in data["day"]]
        week = [float(x) for x in data["week"]]
        if len(day) != 72 or len(week) != 504 or not all(
                math.isfinite(x) and (k % 3 != 0 or x >= 0) for k, x in enumerate(day + week)):
            raise ValueError("inconsistent TrafficProfile state")
        self.day, self.week = array("d", day), array("d", week)
        hour = data.get("hour")
        self.cur_hour = None if hour is None else int(hour)
        self.cur_count = max(0.0, float(data.get("count", 0.0)))
        self.cur_seconds = max(0.0, float(data.get("seconds", 0.0)))
        self.peak_rate = max(0.0, float(data.get("peak_rate", 0.0)))

    # --- the patterns --------------------------------------------------------------------

    def summary(self, latency_day: list[float | None] | None = None) -> dict[str, Any]:
        hours = [self.slot(self.day, h) for h in range(24)]
        seen = [(h, n, m, sd) for h, (n, m, sd) in enumerate(hours) if n > 0]
        out: dict[str, Any] = {
            "hourly": [{"hour": h, "days": n, "requests_per_hour": round(m, 3),
                        "sd": round(sd, 3),
                        "latency_ms": None if latency_day is None or latency_day[h] is None
                        else round(float(latency_day[h] or 0.0), 3)}
                       for h, (n, m, sd) in enumerate(hours)],
            "days_observed": max((n for _h, n, _m, _s in seen), default=0),
            "peaks": [], "batch_windows": [], "daily_cycle": None, "weekly_cycle": None,
            "heatmap": self.heatmap(),
        }
        if len(seen) < 2:
            return out
        means = [m for _h, _n, m, _s in seen]
        mu = statistics.fmean(means)
        sigma = statistics.pstdev(means)
        line = mu + sigma
        for h, n, m, sd in seen:
            if sigma > 0 and m > line:
                conf = _phi((m - line) / (sd / math.sqrt(n))) if n >= 2 and sd > 0 else (
                    1.0 if n >= 2 else 0.0)
                out["peaks"].append({"hour": h, "requests_per_hour": round(m, 3),
                                     "above_mean_sigmas": round((m - mu) / sigma, 2),
                                     "confidence": round(conf, 3)})
        within = statistics.fmean([sd * sd for _h, _n, _m, sd in seen])
        between = sigma * sigma
        r2 = between / (between + within) if between + within > 0 else 0.0
        days = out["days_observed"]
        out["daily_cycle"] = {"r2": round(r2, 3), "days": days,
                              "present": bool(r2 >= 0.5 and days >= 2)}
        out["batch_windows"] = batch_windows([m if n else None for n, m, _s in hours])
        week = [self.slot(self.week, w) for w in range(168)]
        wseen = [(w, m) for w, (n, m, _s) in enumerate(week) if n > 0]
        if len(wseen) >= 48:
            total = statistics.pvariance([m for _w, m in wseen])
            resid = statistics.pvariance([m - hours[w % 24][1] for w, m in wseen])
            # what sampling noise alone puts between the slot means: s_w^2 / n_w
            noise = statistics.fmean([sd * sd / n for n, _m, sd in week if n > 0])
            r2w = max(0.0, resid - noise) / total if total > 0 else 0.0
            weeks = min(n for n, _m, _s in week if n > 0)
            out["weekly_cycle"] = {"r2": round(r2w, 3), "weeks": weeks,
                                   "present": bool(r2w >= 0.2 and weeks >= 2)}
        return out

    def heatmap(self) -> list[list[float | None]]:
        """Mean requests per hour, ``[weekday][hour]`` (Monday first); None: never seen."""
        grid: list[list[float | None]] = [[None] * 24 for _ in range(7)]
        for w in range(168):
            n, m, _sd = self.slot(self.week, w)
            if n:
                grid[weekday(w)][w % 24] = round(m, 3)
        return grid


def batch_windows(means: list[float | None], factor: float = 5.0, longest: int = 4
                  ) -> list[dict[str, Any]]:
    """Runs of at most ``longest`` consecutive hours (wrapping midnight) at least
    ``factor`` x the median hour.

    >>> batch_windows([1.0] * 2 + [20.0, 30.0] + [1.0] * 20)
    [{'start_hour': 2, 'end_hour': 4, 'times_median': 25.0}]
    >>> batch_windows([1.0] * 9 + [3.0] * 3 + [1.0] * 12)  # an office peak is no batch
    []
    """
    known = [m for m in means if m is not None]
    if len(known) < 6:
        return []
    median = statistics.median(known)
    hot = [(m is not None and median > 0 and m >= factor * median) or
           (m is not None and median == 0 and m > 0) for m in means]
    if all(hot) or not any(hot):
        return []
    start = hot.index(False)  # walk from a cold hour so a run is never split at midnight
    out = []
    i = 0
    while i < 24:
        h = (start + i) % 24
        if hot[h]:
            j = i
            while j < 24 and hot[(start + j) % 24]:
                j += 1
            run = [(start + k) % 24 for k in range(i, j)]
            if len(run) <= longest:
                level = statistics.fmean([means[k] or 0.0 for k in run])
                out.append({"start_hour": run[0], "end_hour": (run[-1] + 1) % 24,
                            "times_median": round(level / median, 2) if median else None})
            i = j
        else:
            i += 1
    return sorted(out, key=lambda r: r["start_hour"])


class Patterns:
    """Traffic profiles of every endpoint a gate's baselines hold (at most
    ``max_keys``), plus the whole gate's (``total``, key ``"*"``). The scheduler writes,
    the dashboard reads from a request thread: one lock."""

    def __init__(self, max_keys: int = 1000) -> None:
        from pulsegate.bounded import BoundedLRU

        self.lock = threading.RLock()
        self.profiles: BoundedLRU[str, TrafficProfile] = BoundedLRU(max_keys)
        self.total = TrafficProfile()
        self.last_t: float | None = None
        #: the whole gate's rate per sample over the last ``PEAK_WINDOW`` seconds
        self.recent: deque[tuple[float, float]] = deque(maxlen=20_000)
        self.latency: dict[str, list[float | None]] = {}

    def sample(self, t: float, models: list[tuple[str, Any]]) -> None:
        """One sample at epoch time ``t`` of ``(key, model)`` pairs: each model's request
        count ``n`` and (when it has one) its seasonal baseline's hourly latency."""
        with self.lock:
            seconds = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
            self.last_t = t
            total = 0.0
            for key, model in models:
                p = self.profiles.touch(key)
                if p is None:
                    p = TrafficProfile()
                    self.profiles.put(key, p)
                n = int(getattr(model, "n", 0))
                if p.last_n is None or n < p.last_n:  # new to us, restored or re-created
                    p.last_n = n
                    continue
                delta, p.last_n = n - p.last_n, n
                if seconds > 0:
                    p.add(t, seconds, delta)
                    total += delta
                seasonal = getattr(model, "seasonal", None)
                if seasonal is not None:
                    self.latency[key] = [math.exp(seasonal.day[h]) if seasonal.day_n[h] else None
                                         for h in range(24)]
            if seconds > 0:
                self.total.add(t, seconds, total)
                self.recent.append((t, total / seconds))
                while self.recent and self.recent[0][0] < t - PEAK_WINDOW:
                    self.recent.popleft()
            for key in [k for k in self.latency if k not in self.profiles]:
                del self.latency[key]

    def summary(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            if key == "*":
                return self.total.summary()
            p = self.profiles.get(key)
            return None if p is None else p.summary(self.latency.get(key))

    def report(self, limit: int = 20) -> dict[str, Any]:
        """The gate's patterns and those of the busiest endpoints."""
        with self.lock:
            keys = sorted(self.profiles, key=lambda k: -sum(
                self.profiles[k].day[3 * h] * self.profiles[k].day[3 * h + 1] for h in range(24)))
            return {"total": self.total.summary(),
                    "endpoints": {k: self.summary(k) for k in keys[:limit]}}

    def peak_rate(self) -> float:
        """The observed peak: the highest whole-gate arrival rate over one sample
        (requests/s) in the last ``PEAK_WINDOW`` seconds (a week: the busiest hour of
        every weekday is in it, a spike of last month is not)."""
        with self.lock:
            return max((rate for _t, rate in self.recent), default=0.0)

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"total": self.total.state(), "recent": [list(x) for x in self.recent],
                    "profiles": {k: p.state() for k, p in self.profiles.items()}}

    def load_state(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.total.load_state(data["total"])
            self.recent.extend((float(t), float(r)) for t, r in data.get("recent") or ()
                               if math.isfinite(float(t)) and math.isfinite(float(r)) and r >= 0)
            for key, st in dict(data.get("profiles") or {}).items():
                p = TrafficProfile()
                p.load_state(st)
                self.profiles.put(str(key), p)
