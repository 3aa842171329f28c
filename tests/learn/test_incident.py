from __future__ import annotations

import doctest
import math
import random

import pytest

from pulsegate.learn import incident
from pulsegate.learn.endpoint import EndpointModel
from pulsegate.learn.incident import IncidentDetector


def windows(d: IncidentDetector, rng: random.Random, count: int, per_window: int,
            factor: float = 1.0, gc: float = 0.01, tail: float = 0.0) -> list[bool]:
    """Feed ``count`` windows of log-normal latency (median 50 ms, σ 0.4) with GC pauses;
    ``factor`` scales every request, ``tail`` makes the slowest 2 % that much slower."""
    out = []
    for _ in range(count):
        for _ in range(per_window):
            noise = rng.gauss(0.0, 1.0)
            ms = 50.0 * factor * math.exp(0.4 * noise)
            if rng.random() < gc:
                ms *= rng.uniform(5.0, 15.0)
            if tail and noise > 2.054:
                ms *= tail
            d.add(math.log(ms))
        verdict = d.close()
        out.append(verdict is not None and verdict.is_anomaly)
    return out


def test_docstring_examples() -> None:
    assert doctest.testmod(incident).failed == 0


def test_gc_pauses_on_a_quiet_endpoint_are_no_incident() -> None:
    rng = random.Random(1)
    d = IncidentDetector()
    # 6 requests a window, 1 % of them 5-15x pauses: three weeks of minutes
    assert not any(windows(d, rng, 30_000, 6))
    d = IncidentDetector()
    assert not any(windows(d, rng, 3000, 300))


def test_a_doubling_is_flagged_within_minutes_once_per_episode_and_worse_re_alarms() -> None:
    rng = random.Random(2)
    d = IncidentDetector()
    windows(d, rng, 300, 6)
    fired = windows(d, rng, 60, 6, factor=2.0)
    assert fired.index(True) <= 10 and fired.count(True) == 1
    assert sum(windows(d, rng, 10, 6, factor=8.0)) == 1  # clearly larger: a new alarm


def test_the_same_shift_is_an_incident_with_many_requests_and_not_with_few() -> None:
    few, many = IncidentDetector(), IncidentDetector()
    rng = random.Random(3)
    windows(few, rng, 300, 3)
    windows(many, rng, 300, 300)
    # 1.3x for ten windows: 30 requests cannot tell it from noise, 3000 can
    assert not any(windows(few, rng, 10, 3, factor=1.3))
    assert any(windows(many, rng, 10, 300, factor=1.3))


def test_a_small_shift_needs_to_matter_however_strong_the_evidence() -> None:
    d = IncidentDetector()
    rng = random.Random(4)
    windows(d, rng, 300, 1000)
    assert not any(windows(d, rng, 30, 1000, factor=1.1))  # a 10 % deploy step


def test_a_tail_regression_is_flagged_though_the_mean_barely_moves() -> None:
    d = IncidentDetector()
    rng = random.Random(0)
    windows(d, rng, 300, 60)
    assert any(windows(d, rng, 60, 60, tail=4.0))
    assert not any(windows(IncidentDetector(), rng, 360, 60))  # without it, nothing


def test_warm_up_never_alarms_and_slow_first_requests_only_teach() -> None:
    d = IncidentDetector()
    for ms in (2000.0, 900.0, 400.0):  # imports, connection set-up
        d.add(math.log(ms))
    rng = random.Random(6)
    assert not any(windows(d, rng, 9, 30, factor=4.0))  # fewer than min_windows
    d = IncidentDetector(min_requests=1000)
    assert not any(windows(d, rng, 30, 30, factor=1.0) + windows(d, rng, 3, 30, factor=4.0))


def test_bad_values_are_ignored_and_empty_windows_have_no_verdict() -> None:
    d = IncidentDetector()
    assert d.close() is None
    for x in (math.nan, math.inf, -math.inf):
        d.add(x)
    assert d.n_w == 0 and d.close() is None


def test_state_round_trip_and_an_older_state_starts_cold_with_a_warning() -> None:
    d = IncidentDetector()
    windows(d, random.Random(7), 50, 20)
    e = IncidentDetector()
    e.load_state(d.state())
    assert e.state() == d.state()
    before_drift = {k: v for k, v in d.state().items() if not k.endswith("_long")}
    e.load_state(before_drift)  # saved before the drift test: it starts from the baseline
    assert e.b_long == d.b and e.cusum_long == 0.0
    with pytest.raises(ValueError):
        e.load_state({**d.state(), "version": 1})
    with pytest.raises(ValueError):
        e.load_state({**d.state(), "s": -1.0})
    m = EndpointModel(metrics=("latency",))
    m.update(math.log(20.0), None, True, 0.0)
    old = m.state()
    old["incident"] = {"n": 3, "level": 1.0}  # the windowed AnomalyModel's format
    fresh = EndpointModel(metrics=("latency",))
    with pytest.warns(RuntimeWarning, match="starts cold"):
        fresh.load_state(old)
    assert fresh.n == 1 and fresh.incident.windows == 0


def test_a_slow_leak_at_low_traffic_is_found_against_the_long_reference() -> None:
    """+100 % over six hours, six requests a window (1.25x after 90 windows): the
    baseline (1 h) follows the ramp, the long reference (6 h) does not."""

    def first(seed: int, long_constant: float) -> int:
        d = IncidentDetector(long_constant=long_constant)
        rng = random.Random(seed)
        windows(d, rng, 600, 6)
        fired = [f for w in range(240) for f in windows(d, rng, 1, 6, factor=1.0 + w / 360)]
        assert fired.count(True) <= 2  # once, and again when it has clearly grown
        return fired.index(True) if True in fired else 240

    for seed in range(4):
        found = first(seed, 21600.0)
        assert found <= 150  # within 2.5 h (1.42x)
        assert found < first(seed, 3600.0)  # sooner than with no long reference


def test_a_leak_is_named_latency_drift_against_the_long_reference() -> None:
    """A leak only the long reference shows is a "latency drift", reported against
    what that reference expected (not the baseline that followed the ramp); a step
    is a plain "latency" incident."""
    for seed in range(3):
        d = IncidentDetector()
        rng = random.Random(seed)
        windows(d, rng, 600, 6)
        for w in range(240):
            for _ in range(6):
                d.add(math.log(50.0 * (1.0 + w / 360)))
            verdict = d.close()
            if verdict is not None and verdict.is_anomaly:
                break
        assert verdict is not None and verdict.is_anomaly and d.metric == "latency drift"
        assert 45.0 < math.exp(verdict.forecast) < 60.0  # the long reference, near 50 ms
        assert math.exp(verdict.value) / math.exp(verdict.forecast) >= 1.25
    d = IncidentDetector()
    rng = random.Random(7)
    windows(d, rng, 600, 20)
    assert True in windows(d, rng, 10, 20, factor=2.0) and d.metric == "latency"


def test_mostly_failing_or_mostly_slow_windows_never_break_the_detector() -> None:
    """Error and tail shares near their caps (a job that mostly fails, a young
    endpoint whose share is uncertain): the alternative share stays below 1."""
    d = IncidentDetector(min_windows=1, min_requests=1)
    rng = random.Random(5)
    for w in range(200):
        for i in range(3):
            d.add(math.log(50.0) + (4.0 if rng.random() < 0.5 else rng.gauss(0.0, 0.3)))
            if i or w % 2:
                d.error()  # two thirds or all of them fail
        d.close()
    assert 0.3 < d.p_err <= 0.5 and d.windows == 200
