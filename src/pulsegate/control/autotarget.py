"""The allocator's auto target: the latency it steers to, learnt from the service itself.

``target = min(cap, 2 x baseline)``, where ``cap`` is the configured
``target_latency_ms`` (the SLO) and ``baseline`` the latency without queueing:

* an EMA (weight 0.2) of the window's mean in-service latency over *unqueued* windows
  (nothing queued or shed, under half the limit in use);
* under overload those windows stop; if a dependency then slows down, the old baseline
  would drive the limit to the floor. Queueing latency falls with the requests in flight
  (``R ~ N x S / workers``), latency without queueing does not: so when, within one
  episode of latency >= 0.8 x target, mean in-flight has fallen to <= 0.6 x what it was
  in the episode's slowest window (a later window must be 5 % slower to replace it, so
  noise does not) and mean latency is still >= 0.8 x that window's, the latency is not
  queueing and becomes the baseline. (In-flight and the slowest window, not the limit
  and the first window: while a queue builds up after a step in load, latency lags and
  rises although the limit is being cut.)

>>> b = LatencyBaseline(cap=0.050)
>>> b.window(0.010, lat_ratio=0.2, mean_inflight=3.0, util=0.2, demand=False)
>>> round(b.target(), 3)
0.02
"""

from __future__ import annotations


class LatencyBaseline:
    __slots__ = ("_episode", "baseline", "cap")

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.baseline: float | None = None
        self._episode: tuple[float, float] | None = None  # (in-flight, latency), slowest window

    def target(self) -> float:
        """The latency to steer to: the cap until a baseline is known."""
        return self.cap if self.baseline is None else min(self.cap, 2.0 * self.baseline)

    def window(self, mean_latency: float, lat_ratio: float, mean_inflight: float,
               util: float, demand: bool) -> None:
        """Fold in one control window (latency in seconds, ``lat_ratio`` = latency /
        current target, ``util`` = mean in-flight / limit, ``demand``: queued or shed)."""
        if util < 0.5 and not demand:
            b = self.baseline
            self.baseline = mean_latency if b is None else b + 0.2 * (mean_latency - b)
            self._episode = None
        elif lat_ratio >= 0.8:
            if self._episode is None or mean_latency > 1.05 * self._episode[1]:
                self._episode = (mean_inflight, mean_latency)
            elif (mean_inflight <= 0.6 * self._episode[0]
                  and mean_latency >= 0.8 * self._episode[1]):
                self.baseline = mean_latency
                self._episode = None
        else:
            self._episode = None

    def restore(self, value: object) -> None:
        """A persisted baseline (ignored unless a plausible number of seconds)."""
        if isinstance(value, (int, float)) and 0 < value < 3600:
            self.baseline = float(value)
