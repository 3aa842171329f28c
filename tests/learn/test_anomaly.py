"""AnomalyModel: each stage's formula by hand, flat series, level shifts, suppression,
the likelihood normalisation, persistence and per-update cost."""

from __future__ import annotations

import math
import random

import pytest

from pulsegate.learn.anomaly import AnomalyModel, Score

MAD_TO_SD = math.sqrt(math.pi / 2)


def test_first_value_is_its_own_forecast_and_scores_zero() -> None:
    m = AnomalyModel()
    s = m.update(10.0)
    assert isinstance(s, Score)
    assert (s.forecast, s.z, s.score, s.is_anomaly, s.confidence) == (10.0, 0.0, 0.0, False, 0.0)
    assert m.forecast() == 10.0 and m.n == 1


def test_second_step_by_hand() -> None:
    m = AnomalyModel(warmup=1)
    m.update(10.0)
    s = m.update(12.0)
    # sigma before learning 12: every spread is 0, so the absolute floor 1e-6 applies
    assert s.forecast == 10.0 and s.z == pytest.approx(2.0 / 1e-6)
    # level 10 + 0.3*2; slow mean with rate 1/(n+1)=0.5: 11; slow MAD 0.5*2 = 1
    assert m.forecast() == pytest.approx(10.6)
    assert m.slow == pytest.approx(11.0) and m.slow_dev == pytest.approx(1.0)
    # Huber clip: the residual 2 is clipped at 2k*sigma = 6e-6 before entering the MAD
    assert m.mad == pytest.approx(0.01 * 6e-6)
    # sigma is now floored by phi * slow MAD = 0.3 * 1
    assert m.sigma() == pytest.approx(0.3)
    # third value: z = (x - f)/sigma, interval f +- k sigma
    s3 = m.score(11.5)
    assert s3.z == pytest.approx((11.5 - 10.6) / 0.3)
    assert (s3.low, s3.high) == (pytest.approx(10.6 - 0.9), pytest.approx(10.6 + 0.9))


def test_surprise_likelihood_and_score_formula() -> None:
    m = AnomalyModel(warmup=2)
    state = {"n": 50, "level": 100.0, "mad": 2.0, "slow": 100.0, "slow_dev": 4.0,
             "memo": 0.0, "freq_fast": [0.05, 0.01, 0.002, 0.0, 0.0],
             "freq_slow": [0.1, 0.02, 0.0, 0.0, 0.0]}
    m.load_state(state)
    sigma = max(MAD_TO_SD * 2.0, 0.3 * 4.0)
    assert m.sigma() == pytest.approx(sigma)
    x = 120.0
    cf = 20.0 / sigma  # 7.98: reaches level 4, where the frequency is 0.01
    cs = 20.0 / (MAD_TO_SD * 4.0)  # 3.99: reaches level 2, frequency 0.1
    scale = -math.log(1e-4)
    lf = (-math.log(0.01) + math.log2(cf / 4.0)) / scale
    ls = (-math.log(0.1) + math.log2(cs / 2.0)) / scale
    s = m.score(x)
    assert s.z == pytest.approx(cf)
    assert s.likelihood == pytest.approx(max(lf, ls))
    assert s.score == s.likelihood and s.is_anomaly
    # beyond the last level seen (frequency 0), the floor 1e-4 caps the rarity at 1
    assert m.score(100.0 + 40.0 * sigma).likelihood == 1.0
    # below k on both surprises: never an anomaly, however rare
    assert m.score(100.0 + 2.5 * sigma).likelihood == 0.0


def test_frequencies_learn_by_hand() -> None:
    m = AnomalyModel(prior_weight=0, rarity_rate=0.5)
    m.update(0.0)
    m.update(0.0)  # w = 1/1: frequencies restart at this observation (0 everywhere)
    assert m.state()["freq_fast"] == [0.0] * 5
    m.load_state({**m.state(), "mad": 1.0 / MAD_TO_SD, "slow_dev": 0.0})
    m.update(5.0)  # sigma 1, z = 5: reaches 2 and 4; w = max(0.5, 1/2)
    assert m.state()["freq_fast"] == pytest.approx([0.5, 0.5, 0.0, 0.0, 0.0])
    prior = AnomalyModel()
    assert prior.state()["freq_fast"] == [0.0455, 6.3e-5, 0.0, 0.0, 0.0]


def test_score_does_not_learn() -> None:
    m = AnomalyModel()
    for x in (1.0, 2.0, 3.0):
        m.update(x)
    before = m.state()
    m.score(50.0)
    assert m.state() == before


def test_flat_series_no_division_by_zero_no_collapse() -> None:
    m = AnomalyModel()
    scores = [m.update(5.0) for _ in range(2000)]
    assert all(s.score == 0.0 and not s.is_anomaly and math.isfinite(s.z) for s in scores)
    assert m.sigma() >= 1e-6
    s = m.update(5.5)
    assert math.isfinite(s.z) and s.is_anomaly and 0.0 <= s.score <= 1.0
    zero = AnomalyModel()
    for _ in range(100):
        assert math.isfinite(zero.update(0.0).z)


def noisy(n: int, seed: int = 1, mu: float = 100.0, sd: float = 5.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mu, sd) for _ in range(n)]


def test_spike_is_flagged_and_noise_mostly_is_not() -> None:
    m = AnomalyModel()
    flags = [m.update(x).is_anomaly for x in noisy(1500)]
    assert sum(flags[100:]) <= 5
    s = m.update(200.0)
    assert s.is_anomaly and s.score > 0.75


def test_repeated_alarms_within_one_incident_are_suppressed() -> None:
    m = AnomalyModel()
    for x in noisy(1000):
        m.update(x)
    out = [m.update(x) for x in noisy(30, seed=2, mu=160.0)]
    assert out[0].is_anomaly
    assert sum(s.is_anomaly for s in out) == 1
    assert all(s.score == 0.0 for s in out[1:])
    # the likelihood stays high through the incident, the reported score does not
    assert sum(s.likelihood > 0.5 for s in out) >= 3
    # a much worse value within the same incident is reported again
    assert m.update(100_000.0).is_anomaly


def test_level_shift_adaptation() -> None:
    m = AnomalyModel()
    for x in noisy(1000):
        m.update(x)
    shifted = [m.update(x) for x in noisy(1500, seed=3, mu=130.0)]
    assert abs(m.forecast() - 130.0) < 5.0
    assert m.slow == pytest.approx(130.0, abs=3.0)
    assert sum(s.is_anomaly for s in shifted[200:]) <= 3


def test_likelihood_judges_a_surprise_against_the_series_own_history() -> None:
    rng = random.Random(4)

    def last_likelihood(spiky: bool) -> float:
        m = AnomalyModel()
        for i in range(3000):
            x = rng.gauss(100.0, 5.0)
            if spiky and i % 50 == 0:
                x += 60.0
            m.update(x)
        return m.score(160.0).likelihood

    # the same +60 is routine in a series that spikes every 50 values, not in a calm one
    assert last_likelihood(True) < 0.5 < last_likelihood(False)


def test_side_up_ignores_drops() -> None:
    m = AnomalyModel(side="up")
    for x in noisy(500):
        m.update(x)
    assert m.score(0.0).likelihood == 0.0
    assert m.score(200.0).likelihood > 0.5


def test_warmup_silences_scores() -> None:
    m = AnomalyModel(warmup=30)
    out = [m.update(x) for x in [1.0] * 10 + [100.0]]
    assert all(s.score == 0.0 and not s.is_anomaly for s in out)


def test_state_round_trip_and_validation() -> None:
    m = AnomalyModel()
    for x in noisy(300):
        m.update(x)
    clone = AnomalyModel()
    clone.load_state(m.state())
    assert clone.state() == m.state()
    assert clone.update(123.0) == m.update(123.0)
    good = m.state()
    for bad in ({**good, "mad": -1.0}, {**good, "level": float("nan")},
                {**good, "memo": 2.0}, {**good, "n": -1}, {**good, "freq_fast": [0.1] * 4},
                {**good, "freq_slow": [0.0, 0.0, 0.0, 0.0, 1.5]},
                {k: v for k, v in good.items() if k != "memo"}, {**good, "slow": "x"}):
        with pytest.raises(ValueError):
            AnomalyModel().load_state(bad)


def test_constructor_validation() -> None:
    for kwargs in ({"alpha": 0.0}, {"threshold": 0.0}, {"side": "left"}, {"beta": 0.0},
                   {"gamma": 1.5}, {"decay": 1.0}, {"alarm": 0.0}, {"rarity_floor": 0.0},
                   {"rarity_rate": 2.0}):
        with pytest.raises(ValueError):
            AnomalyModel(**kwargs)  # type: ignore[arg-type]


def test_confidence_grows_with_warmup_and_shrinks_with_spread() -> None:
    m = AnomalyModel(warmup=10)
    confs = [m.update(100.0 + (i % 2)).confidence for i in range(20)]
    assert confs[5] < confs[15] <= 100.0
    wide = AnomalyModel(warmup=10)
    for i in range(20):
        wide.update(100.0 + 40.0 * (i % 2))
    assert wide.score(100.0).confidence < m.score(100.0).confidence


def test_timestamps_switch_the_seasonal_profile_on_and_report_in_series_units() -> None:
    day0 = 1_700_006_400.0  # a midnight UTC
    rng = random.Random(8)

    def cycle(t: float) -> float:
        return 100.0 + 40.0 * math.sin(2 * math.pi * (t % 86400) / 86400)

    m = AnomalyModel()
    plain = AnomalyModel(seasonality="off")
    flags, plain_flags = [], []
    for i in range(24 * 12 * 8):  # 8 days of 5-minute values
        t = day0 + 300.0 * i
        x = cycle(t) + rng.gauss(0.0, 1.0)
        flags.append(m.update(x, at=t).is_anomaly)
        plain_flags.append(plain.update(x, at=t).is_anomaly)
    assert m.seasonal is not None and m.seasonal.active() == "daily"
    assert plain.seasonal is None
    # noise only after day 4: a few alarms per thousand values at most
    assert sum(flags[24 * 12 * 4:]) <= 6
    t = day0 + 8 * 86400 + 6 * 3600.0  # 06:00, the top of the cycle
    s = m.score(cycle(t), at=t)
    # forecast and interval come back in the series' units, around the profile
    assert s.value == pytest.approx(cycle(t))
    assert s.forecast == pytest.approx(cycle(t), abs=8.0)
    assert s.low < cycle(t) < s.high
    assert m.forecast(t) == pytest.approx(s.forecast)
    # the daily peak's value at the daily trough is an anomaly only with the profile
    trough = day0 + 8 * 86400 + 18 * 3600.0
    assert m.score(cycle(t), at=trough).likelihood > 0.5
    before = m.state()
    m.score(500.0, at=trough)
    assert m.state() == before  # score() learns nothing, seasonal profile included
    clone = AnomalyModel()
    clone.load_state(m.state())
    assert clone.update(123.0, at=trough) == m.update(123.0, at=trough)
    bad = {**before, "seasonal": {**before["seasonal"], "day": [0.0]}}
    with pytest.raises(ValueError):
        AnomalyModel().load_state(bad)
    with pytest.raises(ValueError):
        AnomalyModel(seasonality="hourly")


def test_non_finite_values_are_ignored() -> None:
    m = AnomalyModel()
    for x in noisy(200):
        m.update(x)
    before = m.state()
    for bad in (float("nan"), float("inf"), -float("inf")):
        s = m.update(bad)
        assert s.score == 0.0 and not s.is_anomaly
    assert m.state() == before and m.rejected == 3
    assert math.isfinite(m.update(100.0).z)


def test_a_clearly_larger_event_re_alarms_after_a_smaller_one() -> None:
    def after_a_spike(realarm: float) -> tuple[Score, Score]:
        m = AnomalyModel(realarm=realarm)
        for x in noisy(1000):
            m.update(x)
        assert m.update(1000.0).is_anomaly  # a spike ~180 sigma high
        for x in noisy(5, seed=3):
            m.update(x)
        return m.update(1500.0), m.update(20_000.0)
    similar, larger = after_a_spike(2.0)
    assert not similar.is_anomaly  # not twice the surprise: the same incident
    # its rarity (saturated near the top) is below the remembered one's, but the
    # surprise is twenty times larger: reported
    assert larger.is_anomaly
    _, silenced = after_a_spike(math.inf)
    assert silenced.likelihood == larger.likelihood and not silenced.is_anomaly
    with pytest.raises(ValueError):
        AnomalyModel(realarm=0.5)
