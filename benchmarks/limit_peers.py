"""Faithful ports of the adaptive concurrency limits pulsegate is compared with.

Written for this project from a line-by-line reading of the peers' sources (no code
copied; both are Apache-2.0):

* Netflix concurrency-limits, ``concurrency-limits-core`` at commit
  ``78a74b9878d38c4c048b0304ce12a162ab7b7222`` (2026-01-12):
  ``limit/AIMDLimit.java``, ``limit/VegasLimit.java``, ``limit/Gradient2Limit.java``,
  ``limit/WindowedLimit.java`` with ``window/ImmutableAverageSampleWindow.java``,
  ``limit/functions/Log10RootIntFunction.java``, ``limit/measurement/ExpAvgMeasurement.java``,
  ``limiter/AbstractLimiter.java`` / ``SimpleLimiter.java`` (in-flight counted at acquire,
  RTT from acquire to completion, a sample only for a success or a drop).
* Envoy ``source/extensions/filters/http/adaptive_concurrency/controller/
  gradient_controller.cc`` / ``.h`` at commit ``c35f67fb14e41582c2530dcdad417f2516113d0f``
  and the ``GradientControllerConfig`` proto (its defaults).

Defaults are the authors' (each class's docstring lists them). The only departures, all
forced by a simulator and none tuning a peer:

* time is float seconds, not integer nanoseconds / microseconds (the integer rounding of
  the Java average and of Envoy's ``std::chrono::microseconds`` is below 1 µs here);
* Envoy's percentile comes from a ``circllhist`` log-linear histogram (two significant
  digits); here it is the exact order statistic of the window's samples;
* Envoy's timers fire at their exact simulated time (the simulator asks
  :meth:`EnvoyGradientController.next_timer`), Envoy's two required durations are the
  documentation example's: ``concurrency_update_interval`` 100 ms and
  ``min_rtt_calc_params.interval`` 60 s.

Every class has ``limit`` (an int, what a front door enforces). Netflix limits take
``on_sample(start, rtt, inflight, did_drop)`` exactly as ``Limit.onSample``; Envoy's
controller takes ``record(send_time, now)`` as ``recordLatencySample`` and ``fire(now)``
for its timers.
"""

from __future__ import annotations

import math
import random


def log10_root_int(t: int) -> int:
    """``Log10RootIntFunction.create(0)``: ``max(1, int(log10(t)))`` (a table below 1000).

    >>> [log10_root_int(x) for x in (0, 1, 9, 10, 99, 100, 999, 1000, 12345)]
    [1, 1, 1, 1, 1, 2, 2, 3, 4]
    """
    if t <= 0:
        return 1  # the Java table holds max(1, (int) log10(0) = (int) -inf -> MIN_INT) = 1
    return max(1, int(math.log10(t)))


class AIMDLimit:
    """``AIMDLimit``: on a drop or ``rtt > timeout`` the limit becomes
    ``int(limit * backoff)``; otherwise +1 when ``inflight * 2 >= limit``; then clamped to
    ``[min, max]``. Defaults: initial 20, min 20, max 200, backoff 0.9, timeout 5 s.

    >>> a = AIMDLimit(); a.on_sample(0.0, 0.01, 10, False); a.limit
    21
    >>> a.on_sample(0.0, 6.0, 10, False); a.limit   # int(21 * 0.9) = 18, clamped to 20
    20
    """

    name = "AIMD"

    def __init__(self, initial: int = 20, min_limit: int = 20, max_limit: int = 200,
                 backoff: float = 0.9, timeout: float = 5.0) -> None:
        self.limit = initial
        self.min_limit, self.max_limit = min_limit, max_limit
        self.backoff, self.timeout = backoff, timeout

    def on_sample(self, start: float, rtt: float, inflight: int, did_drop: bool) -> None:
        current = self.limit
        if did_drop or rtt > self.timeout:
            current = int(current * self.backoff)
        elif inflight * 2 >= current:
            current += 1
        self.limit = min(self.max_limit, max(self.min_limit, current))


class VegasLimit:
    """``VegasLimit`` (the ``AbstractLimiter`` default): ``queue = ceil(L (1 - noload/rtt))``;
    with ``l = log10_root_int(int L)``: grow by ``beta = 6 l`` when ``queue <= l``, by ``l``
    when ``queue < alpha = 3 l``, shrink by ``l`` when ``queue > beta`` or on a drop; no
    change when ``inflight * 2 < L``. ``noload`` is the smallest RTT seen, re-set to the
    current sample every ``jitter * 30 * L`` samples (jitter uniform in [0.5, 1)).
    Defaults: initial 20, max 1000, smoothing 1.0 (a floor of 1)."""

    name = "Vegas"

    def __init__(self, initial: int = 20, max_concurrency: int = 1000, smoothing: float = 1.0,
                 probe_multiplier: int = 30, rng: random.Random | None = None) -> None:
        self.estimated = float(initial)
        self.limit = initial
        self.max_limit = max_concurrency
        self.smoothing = smoothing
        self.probe_multiplier = probe_multiplier
        self.rng = rng or random.Random(0)
        self.rtt_noload = 0.0
        self.probe_count = 0
        self.probe_jitter = self.rng.uniform(0.5, 1.0)

    def on_sample(self, start: float, rtt: float, inflight: int, did_drop: bool) -> None:
        if rtt <= 0:
            raise ValueError(f"rtt must be >0 but got {rtt}")
        self.probe_count += 1
        if self.probe_jitter * self.probe_multiplier * self.estimated <= self.probe_count:
            self.probe_jitter = self.rng.uniform(0.5, 1.0)
            self.probe_count = 0
            self.rtt_noload = rtt
            return
        if self.rtt_noload == 0 or rtt < self.rtt_noload:
            self.rtt_noload = rtt
            return
        est = self.estimated
        queue = math.ceil(est * (1 - self.rtt_noload / rtt))
        if did_drop:
            new = est - log10_root_int(int(est))
        elif inflight * 2 < est:
            return
        else:
            lg = log10_root_int(int(est))
            alpha, beta, threshold = 3 * lg, 6 * lg, lg
            if queue <= threshold:
                new = est + beta
            elif queue < alpha:
                new = est + lg
            elif queue > beta:
                new = est - lg
            else:
                return
        new = max(1.0, min(float(self.max_limit), new))
        self.estimated = (1 - self.smoothing) * est + self.smoothing * new
        self.limit = int(self.estimated)


class ExpAvg:
    """``ExpAvgMeasurement(window, warmup)``: plain mean of the first ``warmup`` samples,
    then an EMA with factor ``2 / (window + 1)``."""

    def __init__(self, window: int, warmup: int) -> None:
        self.window, self.warmup = window, warmup
        self.value = self.total = 0.0
        self.count = 0

    def add(self, x: float) -> float:
        if self.count < self.warmup:
            self.count += 1
            self.total += x
            self.value = self.total / self.count
        else:
            f = 2.0 / (self.window + 1)
            self.value = self.value * (1 - f) + x * f
        return self.value


class Gradient2Limit:
    """``Gradient2Limit`` (what Netflix's README configures servers with, inside
    ``WindowedLimit``): ``long = ExpAvg(600, warmup 10)`` of the RTTs; when
    ``long / rtt > 2`` the long average decays ``x 0.95``; no change while
    ``inflight < L / 2``; else ``g = clamp(1.5 long / rtt, 0.5, 1)``,
    ``L <- 0.8 L + 0.2 (g L + 4)`` clamped to ``[20, 200]``. Defaults: initial 20, min 20,
    max 200, smoothing 0.2, queue size 4, long window 600, rtt tolerance 1.5."""

    name = "Gradient2"

    def __init__(self, initial: int = 20, min_limit: int = 20, max_limit: int = 200,
                 smoothing: float = 0.2, queue_size: int = 4, long_window: int = 600,
                 rtt_tolerance: float = 1.5) -> None:
        self.estimated = float(initial)
        self.limit = initial
        self.min_limit, self.max_limit = min_limit, max_limit
        self.smoothing, self.queue_size, self.tolerance = smoothing, queue_size, rtt_tolerance
        self.long_rtt = ExpAvg(long_window, 10)

    def on_sample(self, start: float, rtt: float, inflight: int, did_drop: bool) -> None:
        est = self.estimated
        long_rtt = self.long_rtt.add(rtt)
        if long_rtt / rtt > 2:
            self.long_rtt.value *= 0.95
        if inflight < est / 2:
            return
        gradient = max(0.5, min(1.0, self.tolerance * long_rtt / rtt))
        new = est * gradient + self.queue_size
        new = est * (1 - self.smoothing) + new * self.smoothing
        self.estimated = max(float(self.min_limit), min(float(self.max_limit), new))
        self.limit = int(self.estimated)


class WindowedLimit:
    """``WindowedLimit`` with the default average sample window: samples under 100 µs
    are ignored; a window collects min RTT, sum, max in-flight, count and any drop; when a
    sample *ends* after ``next_update`` the window closes, the next one ends
    ``clamp(2 min_rtt, 1 s, 1 s)`` later, and if it held >= 10 samples the delegate gets
    one sample: (mean RTT, max in-flight, any drop). Defaults: min/max window 1 s,
    window size 10, min RTT threshold 100 µs."""

    def __init__(self, delegate: AIMDLimit | VegasLimit | Gradient2Limit,
                 min_window: float = 1.0, max_window: float = 1.0, window_size: int = 10,
                 min_rtt_threshold: float = 100e-6) -> None:
        self.delegate = delegate
        self.name = f"{delegate.name} windowed"
        self.min_window, self.max_window = min_window, max_window
        self.window_size, self.min_rtt_threshold = window_size, min_rtt_threshold
        self.next_update = 0.0
        self._reset()

    def _reset(self) -> None:
        self.w_min, self.w_sum, self.w_inflight, self.w_n, self.w_drop = math.inf, 0.0, 0, 0, False

    @property
    def limit(self) -> int:
        return self.delegate.limit

    def on_sample(self, start: float, rtt: float, inflight: int, did_drop: bool) -> None:
        end = start + rtt
        if rtt < self.min_rtt_threshold:
            return
        self.w_min = min(self.w_min, rtt)
        self.w_sum += rtt
        self.w_inflight = max(self.w_inflight, inflight)
        self.w_n += 1
        self.w_drop = self.w_drop or did_drop
        if end > self.next_update:
            w_min, w_sum, w_inflight, w_n, w_drop = (
                self.w_min, self.w_sum, self.w_inflight, self.w_n, self.w_drop)
            self._reset()
            self.next_update = end + min(max(w_min * 2, self.min_window), self.max_window)
            if w_min < math.inf and w_n >= self.window_size:
                self.delegate.on_sample(start, w_sum / w_n, w_inflight, w_drop)


class EnvoyGradientController:
    """Envoy's adaptive-concurrency ``GradientController`` with the proto's defaults:
    min concurrency 3 (also the initial limit and the limit while measuring minRTT),
    max 1000, 50 requests per minRTT measurement, jitter 15 %, buffer 25 %, p50.

    Starts measuring minRTT (limit pinned to 3; samples of requests sent before the
    measurement began are discarded); after 50 samples ``minRTT = p50`` and the previous
    limit is restored; the next measurement starts ``interval + rand % ceil(interval x
    jitter)`` later. Every ``update_interval`` (not while measuring) the window's p50
    gives ``g = clamp(1.25 minRTT / p50, 0.5, 2)``, ``L <- int(g L + sqrt(g L))`` clamped
    to ``[3, 1000]``; five consecutive windows at the minimum start a new measurement.
    """

    name = "Envoy gradient"

    def __init__(self, *, update_interval: float = 0.1, min_rtt_interval: float = 60.0,
                 request_count: int = 50, jitter: float = 0.15, min_concurrency: int = 3,
                 max_concurrency: int = 1000, buffer: float = 0.25, percentile: float = 0.5,
                 now: float = 0.0, rng: random.Random | None = None) -> None:
        self.update_interval, self.min_rtt_interval = update_interval, min_rtt_interval
        self.request_count, self.jitter, self.buffer = request_count, jitter, buffer
        self.min_concurrency, self.max_concurrency = min_concurrency, max_concurrency
        self.percentile = percentile
        self.rng = rng or random.Random(0)
        self.limit = min_concurrency
        self.deferred = 0  # > 0: measuring minRTT, the limit to restore afterwards
        self.min_rtt = 0.0
        self.samples: list[float] = []
        self.consecutive_min = 0
        self.epoch = -math.inf
        self.min_rtt_timer: float | None = None
        self.sample_timer: float | None = None
        self._enter_min_rtt_window(now)
        self.sample_timer = now + update_interval

    @property
    def measuring(self) -> bool:
        return self.deferred > 0

    def next_timer(self) -> float:
        ts = [t for t in (self.min_rtt_timer, self.sample_timer) if t is not None]
        return min(ts) if ts else math.inf

    def fire(self, now: float) -> None:
        """Run the timers due at ``now`` (the simulator calls this at their times)."""
        if self.min_rtt_timer is not None and self.min_rtt_timer <= now:
            self.min_rtt_timer = None
            self._enter_min_rtt_window(now)
        if self.sample_timer is not None and self.sample_timer <= now:
            self.sample_timer = None
            if self.measuring:
                return  # re-armed when the measurement completes
            self._reset_sample_window(now)
            self.sample_timer = now + self.update_interval

    def record(self, send_time: float, now: float) -> None:
        """``recordLatencySample``: a completed request sent at ``send_time``."""
        if send_time < self.epoch:
            return
        self.samples.append(now - send_time)
        if self.measuring and len(self.samples) >= self.request_count:
            self.min_rtt = self._quantile_and_clear()
            self._update_limit(self.deferred, now)
            self.deferred = 0
            interval_ms = self.min_rtt_interval * 1000
            jitter_ms = math.ceil(interval_ms * self.jitter)
            delay = (interval_ms + (self.rng.getrandbits(32) % jitter_ms if jitter_ms else 0)) / 1000
            self.min_rtt_timer = now + delay
            self.sample_timer = now + self.update_interval

    def _enter_min_rtt_window(self, now: float) -> None:
        if self.measuring:
            return
        self.deferred = self.limit
        self._update_limit(self.min_concurrency, now)
        self.samples.clear()
        self.epoch = now

    def _quantile_and_clear(self) -> float:
        xs = sorted(self.samples)
        self.samples.clear()
        return xs[min(len(xs) - 1, int(self.percentile * len(xs)))]

    def _reset_sample_window(self, now: float) -> None:
        if not self.samples:
            return
        sample_rtt = self._quantile_and_clear()
        gradient = max(0.5, min(2.0, self.min_rtt * (1 + self.buffer) / sample_rtt))
        lim = self.limit * gradient
        new = int(lim + math.sqrt(lim))
        self._update_limit(max(self.min_concurrency, min(self.max_concurrency, new)), now)

    def _update_limit(self, new: int, now: float) -> None:
        old = self.limit
        self.limit = new
        if not self.measuring and old == self.min_concurrency and new == self.min_concurrency:
            self.consecutive_min += 1
        else:
            self.consecutive_min = 0
        if self.consecutive_min >= 5:
            self.min_rtt_timer = now  # enableTimer(0): a new measurement right away
