"""Workload patterns from sampled request counts: peaks, batch windows, daily and
weekly cycles, the hour x weekday heat map."""

from __future__ import annotations

import math
import random

import pytest

from pulsegate.advisor.patterns import DAYS, Patterns, TrafficProfile, batch_windows

HOUR = 3600.0
MONDAY = 4 * 86400.0  # epoch day 4 (1970-01-05) was a Monday


class Model:
    def __init__(self) -> None:
        self.n = 0
        self.seasonal = None


def drive(rate_of: dict[str, object], days: int, step: float = 600.0, seed: int = 1
          ) -> Patterns:
    """Sample every ``step`` s for ``days`` days; each model gets Poisson-ish traffic at
    ``rate(t)`` requests per hour."""
    rng = random.Random(seed)
    models = {k: Model() for k in rate_of}
    p = Patterns()
    t = MONDAY
    end = MONDAY + days * 86400.0
    while t < end:
        for k, m in models.items():
            rate = rate_of[k](t)  # type: ignore[operator]
            m.n += max(0, int(rng.gauss(rate * step / HOUR, math.sqrt(rate * step / HOUR + 1))))
        p.sample(t, list(models.items()))
        t += step
    return p


def office(t: float) -> float:
    hour = int(t // HOUR) % 24
    weekend = int(t // 86400 + 3) % 7 >= 5
    base = 600.0 if 9 <= hour < 12 else 200.0
    return base / 4 if weekend else base


def nightly_batch(t: float) -> float:
    hour = int(t // HOUR) % 24
    return 3000.0 if hour in (2, 3) else 50.0


def flat(t: float) -> float:
    return 300.0


def test_peak_hours_with_confidence_and_a_daily_cycle() -> None:
    p = drive({"GET /api": office}, days=5)
    s = p.summary("GET /api")
    assert s is not None
    assert [pk["hour"] for pk in s["peaks"]] == [9, 10, 11]
    assert all(pk["confidence"] > 0.9 for pk in s["peaks"])
    assert s["daily_cycle"]["present"] is True
    assert s["batch_windows"] == []


def test_flat_traffic_has_no_peak_and_no_cycle() -> None:
    s = drive({"GET /flat": flat}, days=4).summary("GET /flat")
    assert s is not None
    assert all(pk["confidence"] < 0.9 for pk in s["peaks"])
    assert s["daily_cycle"]["present"] is False


def test_batch_window_of_a_nightly_job() -> None:
    s = drive({"JOB nightly": nightly_batch}, days=3).summary("JOB nightly")
    assert s is not None
    assert [(b["start_hour"], b["end_hour"]) for b in s["batch_windows"]] == [(2, 4)]
    assert s["batch_windows"][0]["times_median"] > 20


def test_weekly_cycle_and_heatmap_weekdays() -> None:
    p = drive({"GET /api": office}, days=21, step=1800.0)
    s = p.summary("GET /api")
    assert s is not None
    assert s["weekly_cycle"]["present"] is True
    grid = s["heatmap"]
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)
    monday, sunday = grid[DAYS.index("Mon")], grid[DAYS.index("Sun")]
    assert monday[10] is not None and sunday[10] is not None
    assert monday[10] > 3 * sunday[10]
    # and two weeks of flat traffic have no weekly cycle
    flat_s = drive({"GET /flat": flat}, days=21, step=1800.0).summary("GET /flat")
    assert flat_s is not None and flat_s["weekly_cycle"]["present"] is False


def test_whole_gate_profile_and_peak_rate() -> None:
    p = drive({"GET /a": office, "GET /b": flat}, days=2)
    total = p.summary("*")
    assert total is not None and total["hourly"][10]["requests_per_hour"] > 700
    assert 0.2 < p.peak_rate() < 0.4  # ~900 requests/hour at the peak


def test_state_round_trip_and_bad_state_refused() -> None:
    p = drive({"GET /api": office}, days=3)
    q = Patterns()
    q.load_state(p.state())
    assert q.summary("GET /api") == p.summary("GET /api")
    bad = TrafficProfile()
    state = bad.state()
    state["day"] = state["day"][:10]
    try:
        bad.load_state(state)
    except ValueError:
        pass
    else:
        raise AssertionError("a cut state was accepted")


def test_batch_windows_wrap_midnight() -> None:
    means: list[float | None] = [1.0] * 24
    means[23] = means[0] = 40.0
    assert batch_windows(means) == [{"start_hour": 23, "end_hour": 1, "times_median": 40.0}]


def test_the_observed_peak_is_last_weeks() -> None:
    spike = {"on": True}

    def rate(t: float) -> float:
        return 36_000.0 if spike["on"] else 360.0  # requests per hour: 10/s, then 0.1/s

    p = Patterns()
    model = Model()
    t = MONDAY
    for step in range(12 * 24 * 9):  # nine days, every 5 minutes; the spike the first hour
        spike["on"] = step < 12
        model.n += int(rate(t) * 300 / HOUR)
        p.sample(t, [("GET /a", model)])
        if step == 24:
            assert p.peak_rate() == pytest.approx(10.0)
        t += 300.0
    assert p.peak_rate() == pytest.approx(0.1)
