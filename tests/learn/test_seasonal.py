"""SeasonalBaseline: automatic switch-on, profile removal, bounded memory, persistence,
and its wiring into the endpoint's incident windows."""

from __future__ import annotations

import math
import random

import pytest

from pulsegate.learn.anomaly import Score
from pulsegate.learn.endpoint import EndpointModel
from pulsegate.learn.incident import IncidentDetector
from pulsegate.learn.seasonal import HOUR, SeasonalBaseline

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 86400)  # a midnight UTC


def daily(t: float) -> float:
    return 100.0 + 50.0 * math.sin(2 * math.pi * ((t % 86400) / 86400))


def test_off_passes_values_through() -> None:
    s = SeasonalBaseline("off")
    assert s.adjust(T0, 5.0) == 5.0 and s.active() == "off"


def test_daily_profile_switches_on_after_min_days_and_removes_the_cycle() -> None:
    s = SeasonalBaseline()
    rng = random.Random(1)
    out = []
    for i in range(24 * 6):
        t = T0 + i * HOUR
        out.append((t, s.adjust(t, daily(t) + rng.gauss(0, 1))))
        if i == 24 * 2:
            assert s.active() == "off"  # not enough history yet
    assert s.active() == "daily"
    # on day 5-6 the adjusted values hug the global mean instead of swinging +-50
    late = [v for t, v in out if t >= T0 + 4.5 * 86400]
    assert max(late) - min(late) < 20.0
    assert s.expected(T0 + 6 * HOUR) == pytest.approx(daily(T0 + 6 * HOUR), abs=5.0)


def test_no_cycle_no_profile() -> None:
    s = SeasonalBaseline()
    rng = random.Random(2)
    for i in range(24 * 10):
        s.adjust(T0 + i * HOUR, rng.gauss(100.0, 5.0))
    assert s.active() == "off"


def test_spread_errors_by_hand() -> None:
    s = SeasonalBaseline(gamma=0.5)
    s.adjust(T0, 10.0)  # first value: every error is 0
    s.adjust(T0 + HOUR, 14.0)  # global 10, hour 1 unseen: errors all |14-10| = 4
    # rate max(0.5, 1/2) = 0.5
    assert (s.err_global, s.err_day, s.err_week) == (2.0, 2.0, 2.0)
    assert s.glob == pytest.approx(12.0) and s.day[0] == 10.0 and s.day[1] == 14.0


def test_weekly_after_min_weeks_when_days_differ() -> None:
    s = SeasonalBaseline(min_weeks=2.0)
    for i in range(24 * 7 * 3):
        t = T0 + i * HOUR
        weekday = int(t // 86400) % 7
        s.adjust(t, daily(t) + (80.0 if weekday in (2, 3) else 0.0))
    assert s.active() == "weekly"


def test_memory_is_bounded() -> None:
    s = SeasonalBaseline()
    for i in range(24 * 7 * 5):
        s.adjust(T0 + i * HOUR, float(i))
    assert len(s.day) == 24 and len(s.week) == 168


def test_state_round_trip_and_validation() -> None:
    s = SeasonalBaseline()
    for i in range(100):
        s.adjust(T0 + i * HOUR, daily(T0 + i * HOUR))
    c = SeasonalBaseline()
    c.load_state(s.state())
    assert c.state() == s.state()
    good = s.state()
    for bad in ({**good, "day": [0.0] * 23}, {**good, "errors": [-1.0, 0.0, 0.0]},
                {**good, "glob": float("inf")}, {k: v for k, v in good.items() if k != "n"}):
        with pytest.raises(ValueError):
            SeasonalBaseline().load_state(bad)
    with pytest.raises(ValueError):
        SeasonalBaseline("hourly")


def test_endpoint_feeds_deseasonalised_window_means_to_the_incident_model() -> None:
    seen: list[float] = []

    class Spy(IncidentDetector):
        def close(self, seconds: float | None = None, shift: float = 0.0) -> Score | None:
            seen.append(self.s1 / self.n_w - shift)
            return super().close(seconds, shift)

    em = EndpointModel(window=HOUR, incident=Spy(HOUR),
                       seasonal=SeasonalBaseline(utc_offset=T0))
    for i in range(24 * 6):
        em.window_add(i * HOUR, math.log(daily(T0 + i * HOUR)))
    late = seen[-24:]
    raw = [math.log(daily(T0 + i * HOUR)) for i in range(24 * 5, 24 * 6)]
    assert max(late) - min(late) < 0.3 * (max(raw) - min(raw))
    assert em.state()["seasonal"]["n"] == len(seen)
    # the incident verdict is reported in log-latency units, profile included
    for i in range(24 * 6, 24 * 6 + 7):
        em.window_add(i * HOUR, math.log(daily(T0 + i * HOUR)))
    result = em.roll(24 * 6 * HOUR + 7 * HOUR)
    expected = math.log(daily(T0 + (24 * 6 + 6) * HOUR))
    assert result.value == pytest.approx(expected)
    assert result.forecast == pytest.approx(expected, abs=0.1)
    assert result.low < result.value < result.high
    assert not result.is_anomaly


def test_hysteresis_keeps_a_profile_between_gain_and_release() -> None:
    s = SeasonalBaseline()  # gain 0.6, release 0.85
    s.start, s.span = T0, 5 * 86400.0
    s.err_global, s.err_day, s.err_week = 1.0, 0.7, 0.7
    s.current = "off"
    assert s._switch() == "off"  # 0.7 is not below 0.6 * 1.0: stays off
    s.current = "daily"
    assert s._switch() == "daily"  # but below 0.85 * 1.0: an active profile stays on
    s.err_day = 0.9
    assert s._switch() == "off"  # worse than the release ratio: off
    s.err_day = 0.5
    s.current = "off"
    assert s._switch() == "daily"
    with pytest.raises(ValueError):
        SeasonalBaseline(gain=0.9, release=0.8)
    bad = {**s.state(), "current": "hourly"}
    with pytest.raises(ValueError):
        SeasonalBaseline().load_state(bad)
