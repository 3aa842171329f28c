"""Per job name, what a single run cannot tell: how often the job starts (and whether it
stopped: starvation), how long it waited, how often it is retried, the backlog behind it.

Every run's own figures (duration, CPU, memory, SQL, outcome) are learnt by the job's
endpoint model (``"JOB <name>"``, :mod:`pulsegate.units`) and every wait by the model of
``"QUEUE <name>"`` -- so a queue that backs up is an ordinary incident of that model
(its waits sit above their baseline, window after window). This tracker adds the rate.

**Starvation.** For each name the interval between starts is smoothed:
:math:`m \\leftarrow m + a(\\Delta - m)`, :math:`d \\leftarrow d + a(|\\Delta - m| - d)`
with :math:`a = \\max(1/k, 0.05)` at the :math:`k`-th interval (a plain mean at first),
and :math:`\\sigma = 1.2533\\,d` (the mean absolute deviation of a normal law, scaled to
its σ). A name that has started at least ``MIN_INTERVALS`` times *starves* when the time
since its last start exceeds

.. math:: L = m + \\max(m,\\ 8\\sigma)

-- one missed run of a periodic job (:math:`\\sigma \\approx 0`: :math:`L = 2m`); for
starts that arrive at random (Poisson: exponential intervals, whose mean absolute
deviation is :math:`2m/e`, so :math:`\\sigma \\approx 0.92m`) :math:`L \\approx 8.4m`, which a
working job exceeds with probability :math:`e^{-8.4} \\approx 0.02\\%` per interval (more
while :math:`m` and :math:`d` are still noisy estimates). The check
runs on the scheduler thread every ``check_interval`` seconds, flags each episode once
(:func:`pulsegate.unit_flags.flag`, metric ``"starvation"``, score
:math:`\\min(1, g / 2L)` for a gap :math:`g`: 0.5 at the line) and the episode ends at
the next start.

**Bursts are one start for the rhythm.** The interval that :math:`L` is judged on
leaves out the gaps shorter than ``BURST_SECONDS`` (1 s): a fan-out that starts 3 000
runs in one second and then nothing for an hour would otherwise learn a rhythm of
0.3 ms and starve 30 s later, at every burst (event-weighted smoothing forgets the
hour within a hundred starts). Learnt on the gaps of 1 s and more, a burst of any size
is one start and the hour between bursts is the rhythm. A job that only ever starts
more often than once a second has no rhythm and never starves: its queue stalling is
seen where it happens (the ``QUEUE <name>`` waits, :mod:`pulsegate.jobs.broker`).
The start rate for the backlog below keeps every gap.

**Backlog.** With :math:`\\lambda` the recent start rate (:math:`1/m`) and :math:`w` the
last queue wait, the jobs queued behind the one that just started are about
:math:`\\lambda w` (Little's law, :math:`L = \\lambda W`, for a queue served first in,
first out at the rate it is fed): ``backlog_estimate``.

>>> t = JobTracker(check_interval=60.0)
>>> for i in range(12):
...     t.started("nightly", 3600.0 * i, 5.0)
>>> t.starving(3600.0 * 12.5), t.starving(3600.0 * 13.1)
([], ['nightly'])
>>> for i in range(3000):  # a fan-out: 3 000 runs in one second, then silence
...     t.started("fanout", 100.0 + i / 3000, 5.0)
>>> t.starving(3600.0), round(t.backlog_estimate("fanout"))  # 5 ms x 3 000 a second
([], 15)
"""

from __future__ import annotations

import math
import threading
from typing import Any

from pulsegate.bounded import BoundedLRU

__all__ = ["MIN_INTERVALS", "JobRate", "JobTracker"]

#: Starts a name needs before it can starve (its rate is known by then).
MIN_INTERVALS = 10
#: How many σ of the interval past its mean a silence must last to be starvation.
SIGMAS = 8.0
#: σ of the interval from its mean absolute deviation (normal law): sqrt(pi / 2).
MAD_TO_SIGMA = math.sqrt(math.pi / 2.0)
#: Starts closer than this to the one before belong to its burst (not a rhythm's gap).
BURST_SECONDS = 1.0


class Intervals:
    """The smoothed interval between starts and its spread (the formulas above)."""

    __slots__ = ("count", "dev", "mean")

    def __init__(self, mean: float = 0.0, dev: float = 0.0, count: int = 0) -> None:
        if not (math.isfinite(mean) and math.isfinite(dev)) or min(mean, dev, count) < 0:
            raise ValueError("inconsistent job intervals")
        self.mean, self.dev, self.count = mean, dev, count

    def learn(self, gap: float) -> None:
        self.count = k = self.count + 1
        a = max(1.0 / k, 0.05)
        if k == 1:
            self.mean = gap
        else:
            self.dev += a * (abs(gap - self.mean) - self.dev)
            self.mean += a * (gap - self.mean)

    def limit(self) -> float | None:
        """:math:`L = m + \\max(m, 8\\sigma)` seconds, None before ``MIN_INTERVALS``."""
        if self.count < MIN_INTERVALS or self.mean <= 0.0:
            return None
        return self.mean + max(self.mean, SIGMAS * MAD_TO_SIGMA * self.dev)


class JobRate:
    """One job name's starts: the intervals between all of them (the start rate) and
    between bursts (the rhythm starvation is judged on), the last start, the last queue
    wait, counts by outcome, and whether it is starving."""

    __slots__ = ("every", "last_start", "last_wait_ms", "outcomes", "retries", "rhythm",
                 "starving")

    def __init__(self) -> None:
        self.every = Intervals()
        self.rhythm = Intervals()
        self.last_start: float | None = None
        self.last_wait_ms: float | None = None
        self.outcomes: dict[str, int] = {}
        self.retries = 0
        self.starving = False

    def start(self, at: float, wait_ms: float | None) -> None:
        last = self.last_start
        if last is not None and at >= last:
            gap = at - last
            self.every.learn(gap)
            if gap >= BURST_SECONDS:
                self.rhythm.learn(gap)
        if last is None or at >= last:
            self.last_start = at
        if wait_ms is not None:
            self.last_wait_ms = wait_ms
        self.starving = False

    def limit(self) -> float | None:
        """The rhythm's :math:`L` (:meth:`Intervals.limit`)."""
        return self.rhythm.limit()

    def state(self) -> dict[str, Any]:
        every, rhythm = self.every, self.rhythm
        return {"mean": every.mean, "dev": every.dev, "intervals": every.count,
                "rhythm": [rhythm.mean, rhythm.dev, rhythm.count],
                "last_start": self.last_start, "last_wait_ms": self.last_wait_ms,
                "outcomes": dict(self.outcomes), "retries": self.retries,
                "starving": self.starving}

    def load(self, data: Any) -> None:
        self.every = Intervals(float(data["mean"]), float(data["dev"]), int(data["intervals"]))
        rhythm = data.get("rhythm")  # (a state saved before bursts were told apart: the
        # intervals of every start, which for a periodic job are its rhythm)
        self.rhythm = (Intervals(float(rhythm[0]), float(rhythm[1]), int(rhythm[2]))
                       if rhythm is not None else
                       Intervals(self.every.mean, self.every.dev, self.every.count))
        last, wait = data.get("last_start"), data.get("last_wait_ms")
        self.last_start = None if last is None else float(last)
        self.last_wait_ms = None if wait is None else float(wait)
        outcomes = data.get("outcomes")
        if isinstance(outcomes, dict):
            self.outcomes = {str(k): int(v) for k, v in list(outcomes.items())[:8]}
        self.retries = int(data.get("retries") or 0)
        self.starving = bool(data.get("starving"))


class JobTracker:
    """The job names of one gate (at most ``max_names``, least recently started
    forgotten first). Times are wall-clock seconds (starts may be compared across a
    restart: the state is persisted with the registry's snapshots)."""

    def __init__(self, max_names: int = 200, check_interval: float = 30.0) -> None:
        self.rates: BoundedLRU[str, JobRate] = BoundedLRU(max_names)
        self.check_interval = check_interval
        self.lock = threading.Lock()
        self.starvations = 0

    def _rate(self, name: str) -> JobRate:
        rate = self.rates.touch(name)
        if rate is None:
            rate = JobRate()
            self.rates.put(name, rate)
        return rate

    def started(self, name: str, at: float, wait_ms: float | None = None) -> None:
        """A run of ``name`` started at ``at`` after waiting ``wait_ms`` in its queue."""
        with self.lock:
            self._rate(name).start(at, wait_ms)

    def finished(self, name: str, outcome: str) -> None:
        with self.lock:
            rate = self._rate(name)
            rate.outcomes[outcome] = rate.outcomes.get(outcome, 0) + 1
            if outcome == "retry":
                rate.retries += 1

    def starving(self, now: float) -> list[str]:
        """The names that starve at ``now`` and were not flagged yet (each episode
        once: they are marked)."""
        out = []
        with self.lock:
            for name, rate in self.rates.items():
                limit = rate.limit()
                if rate.starving or limit is None or rate.last_start is None:
                    continue
                if now - rate.last_start > limit:
                    rate.starving = True
                    out.append(name)
        self.starvations += len(out)
        return out

    def verdict(self, name: str, now: float) -> dict[str, Any]:
        """The fields of a starvation incident of ``name`` at ``now``: the gap and the
        expected interval (in ms, as ``window_mean_ms`` and ``expected_ms``), their
        ratio, the limit and the score."""
        rate = self.rates.get(name)
        if rate is None or rate.last_start is None:
            return {}
        gap = now - rate.last_start
        limit = rate.limit() or gap
        mean = rate.rhythm.mean
        return {"window_mean_ms": gap * 1000.0, "expected_ms": mean * 1000.0,
                "ratio": gap / mean if mean > 0 else 0.0,
                "excess_ms": (gap - mean) * 1000.0, "limit_ms": limit * 1000.0,
                "requests": rate.rhythm.count + 1, "start": rate.last_start,
                "score": min(1.0, gap / (2.0 * limit)) if limit > 0 else 1.0}

    def backlog_estimate(self, name: str) -> float | None:
        """:math:`\\lambda w`: jobs queued behind the last start of ``name``."""
        rate = self.rates.get(name)
        if (rate is None or rate.last_wait_ms is None or rate.every.count == 0
                or rate.every.mean <= 0):
            return None
        return rate.last_wait_ms / 1000.0 / rate.every.mean

    # --- reporting and persistence ------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``gate.stats()["jobs"]``: per name, starts, mean interval, last wait, retries,
        outcomes, backlog estimate, starving."""
        with self.lock:
            names = list(self.rates.items())
        out: dict[str, Any] = {"starvations": self.starvations, "names": {}}
        for name, rate in names:
            out["names"][name] = {
                "intervals": rate.every.count,
                "mean_interval_s": round(rate.every.mean, 3) if rate.every.count else None,
                "last_wait_ms": rate.last_wait_ms, "retries": rate.retries,
                "outcomes": dict(rate.outcomes), "backlog_estimate":
                    self.backlog_estimate(name), "starving": rate.starving}
        return out

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {name: rate.state() for name, rate in self.rates.items()}

    def load_state(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        with self.lock:
            for name, row in list(data.items())[: self.rates.maxsize]:
                rate = JobRate()
                try:
                    rate.load(row)
                except (TypeError, ValueError, KeyError, AttributeError):
                    continue
                self.rates.put(str(name), rate)
