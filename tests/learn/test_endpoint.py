"""EndpointModel formulas against hand-computed values."""

from __future__ import annotations

import math

import pytest

from pulsegate.learn.endpoint import FLOORS, NO_SCORE, EndpointModel, transform


def test_transforms_are_the_documented_log_scales() -> None:
    assert transform("latency", 100.0) == pytest.approx(math.log(100.0))
    assert transform("latency", 0.0) == pytest.approx(math.log(1e-3))  # floored, no -inf
    assert transform("queries", 3) == pytest.approx(math.log1p(3))
    assert transform("memory", -9) == pytest.approx(-math.log1p(9))
    assert transform("cpu", -1.0) == 0.0


def test_first_value_sets_the_level_and_scores_nothing() -> None:
    m = EndpointModel(alpha=0.5, threshold=3.0, warmup=1, metrics=("latency",))
    s = m.observe([2.0])
    assert s.score == 0.0 and s.predicted_ms is None
    assert m.level == [2.0] and m.var == [0.0] and m.n == 1


def test_update_follows_the_smoothing_and_variance_recurrences() -> None:
    # alpha=0.5, beta=0.5: after x1=2, x2=4: r=2, v = 0 + .5*(4-0) = 2, f = 2 + .5*2 = 3
    m = EndpointModel(alpha=0.5, threshold=3.0, warmup=1, metrics=("latency",), beta=0.5,
                      min_excess_ms=0.0)
    m.observe([2.0])
    s = m.observe([4.0])
    # Scored against the state before the update: f=2, sigma=floor (v=0) -> z = 2/0.05 = 40
    assert s.latency_z == pytest.approx(2.0 / FLOORS["latency"])
    assert s.score == pytest.approx(40**2 / (40**2 + 9))
    assert s.is_anomaly and s.driver == "latency"
    assert m.level[0] == pytest.approx(3.0)
    assert m.var[0] == pytest.approx(2.0)
    # Next request: forecast e^3, sigma sqrt(2), interval e^(3 ± 3·sqrt 2)
    pred, conf = m.predict()
    assert pred == pytest.approx(math.exp(3.0))
    assert conf == pytest.approx(100.0 * math.exp(-math.sqrt(2.0)))
    s3 = m.observe([3.0], learn=False)
    assert s3.low_ms == pytest.approx(math.exp(3 - 3 * math.sqrt(2)))
    assert s3.high_ms == pytest.approx(math.exp(3 + 3 * math.sqrt(2)))
    assert s3.score == 0.0  # exactly on the forecast


def test_score_without_learning_leaves_state_untouched() -> None:
    m = EndpointModel(metrics=("latency", "queries"))
    for x in (1.0, 1.1, 0.9, 1.0):
        m.observe([x, 1.0])
    before = (list(m.level), list(m.var), m.n)
    m.observe([5.0, 9.0], learn=False)
    assert (m.level, m.var, m.n) == before


def test_warmup_gates_scores_and_confidence_ramps() -> None:
    m = EndpointModel(alpha=0.3, threshold=3.0, warmup=10, metrics=("latency",))
    confs = []
    for _ in range(10):
        s = m.observe([math.log(20.0)])
        assert s.score == 0.0 and not s.is_anomaly
        confs.append(s.confidence)
    assert confs == sorted(confs)
    assert m.observe([math.log(2000.0)]).is_anomaly  # warm now


def test_flat_series_does_not_collapse_the_spread() -> None:
    m = EndpointModel(metrics=("latency",), warmup=5)
    for _ in range(500):
        m.observe([math.log(10.0)])
    s = m.observe([math.log(10.2)], learn=False)  # +2 %: below the 5 % floor
    assert math.isfinite(s.latency_z) and s.latency_z < 1.0
    assert not s.is_anomaly
    assert m.observe([math.log(20.0)], learn=False).is_anomaly  # doubling is


def test_only_upward_deviations_score() -> None:
    m = EndpointModel(metrics=("latency",), warmup=5)
    for i in range(50):
        m.observe([math.log(100.0 + (i % 5))])
    assert m.observe([math.log(1.0)], learn=False).score == 0.0
    assert m.observe([math.log(400.0)], learn=False).score > 0.9


def test_driver_names_the_metric_that_moved() -> None:
    m = EndpointModel(metrics=("latency", "queries"), warmup=5)
    for i in range(40):
        m.observe([math.log(50.0 + i % 3), math.log1p(3)])
    s = m.observe([math.log(51.0), math.log1p(40)], learn=False)
    assert s.driver == "queries" and s.is_anomaly


def test_none_values_skip_a_metric() -> None:
    m = EndpointModel(metrics=("latency", "memory"), warmup=1)
    m.observe([1.0, 2.0])
    m.observe([1.0, None])
    assert m.level[1] == 2.0 and m.var[1] == 0.0


def test_state_round_trip_and_validation() -> None:
    m = EndpointModel(metrics=("latency", "queries"))
    for i in range(40):
        m.observe([1.0 + (i % 4) * 0.1, 0.5])
    clone = EndpointModel(metrics=("latency", "queries"))
    clone.load_state(m.state())
    assert clone.predict() == m.predict()
    bad = m.state()
    bad["var"] = [-1.0, 0.0]
    with pytest.raises(ValueError):
        EndpointModel(metrics=("latency", "queries")).load_state(bad)


def test_windowed_incident_detection_fires_on_a_sustained_shift() -> None:
    m = EndpointModel(metrics=("latency",), window=1.0)
    now, fired = 0.0, []
    for second in range(120):
        level = 10.0 if second < 90 else 60.0
        for j in range(10):
            now = second + j / 10
            r = m.window_add(now, math.log(level * (1 + 0.05 * ((j % 3) - 1))))
            if r is not None and r.is_anomaly:
                fired.append(second)
    assert fired and all(s >= 90 for s in fired)


def test_sub_millisecond_jitter_is_never_anomalous() -> None:
    m = EndpointModel(metrics=("latency",), warmup=5)  # min_excess_ms = 1.0
    for _ in range(100):
        m.observe([math.log(0.04)])  # a 40 µs endpoint
    assert not m.observe([math.log(0.2)], learn=False).is_anomaly  # 5x, but +0.16 ms
    assert m.observe([math.log(5.0)], learn=False).is_anomaly  # +5 ms is
    floor = math.log1p(1.0 / 0.04) / 3.0  # exactly 1 ms above the forecast is z = k
    assert m.floors[0] == pytest.approx(floor)
    assert m.observe([math.log(0.04 + 0.999)], learn=False).latency_z < 3.0
    assert m.observe([math.log(0.04 + 1.001)], learn=False).latency_z > 3.0


def test_sub_millisecond_cpu_and_small_query_changes_are_not_anomalous() -> None:
    m = EndpointModel(metrics=("latency", "queries", "cpu"), warmup=5)
    for _ in range(100):
        m.observe([math.log(50.0), math.log1p(3), math.log1p(0.1)])
    quiet = m.observe([math.log(50.0), math.log1p(4), math.log1p(0.4)], learn=False)
    assert not quiet.is_anomaly  # +1 query, +0.3 ms CPU
    loud = m.observe([math.log(50.0), math.log1p(3), math.log1p(5.0)], learn=False)
    assert loud.is_anomaly and loud.driver == "cpu"  # +4.9 ms CPU
    assert m.observe([math.log(50.0), math.log1p(30), math.log1p(0.1)],
                     learn=False).driver == "queries"


def test_score_latency_matches_observe_on_latency_alone() -> None:
    m = EndpointModel(metrics=("latency", "queries"), warmup=5)
    for i in range(40):
        m.observe([math.log(20.0 + i % 4), math.log1p(2)])
    for ms in (5.0, 21.0, 30.0, 90.0):
        x = math.log(ms)
        assert m.score_latency(x) == pytest.approx(m.observe([x], learn=False).score)
    assert m.score_latency(math.log(90.0)) > 0.5


def test_update_returns_what_observe_reports_and_learns_the_same() -> None:
    a = EndpointModel(metrics=("latency", "queries"), warmup=5)
    b = EndpointModel(metrics=("latency", "queries"), warmup=5)
    for i in range(60):
        latency = math.log(20.0 + i % 4 + (400.0 if i == 50 else 0.0))
        full = a.observe([latency, math.log1p(2)])
        score, anomalous, driver, incident = b.update(latency, [math.log1p(2)])
        assert incident is None  # no now, no window
        assert (score, anomalous) == (full.score, full.is_anomaly)
        assert (b.metrics[driver] if driver >= 0 else None) == full.driver
        assert anomalous == (i == 50)
    assert a.state() == b.state()


def test_update_given_now_feeds_the_incident_window_as_window_add_does() -> None:
    a = EndpointModel(metrics=("latency",), window=1.0)
    b = EndpointModel(metrics=("latency",), window=1.0)
    verdicts_a, verdicts_b = [], []
    for step in range(1200):
        now = step / 10
        x = math.log((10.0 if now < 90 else 60.0) * (1 + 0.05 * ((step % 3) - 1)))
        a.update(x)
        verdicts_a.append(a.window_add(now, x))
        verdicts_b.append(b.update(x, None, True, now)[3])
    assert verdicts_a == verdicts_b and a.state() == b.state()
    assert any(v is not None and v.is_anomaly for v in verdicts_b)
    assert b.update(0.0, None, False, 500.0)[3] is None and b.win_end < 500.0  # no learning


def test_observe_requires_the_latency() -> None:
    with pytest.raises(ValueError, match="latency"):
        EndpointModel().observe([None, 1.0])


def test_the_interval_is_derived_from_the_forecast_and_spread() -> None:
    m = EndpointModel(warmup=1, metrics=("latency",))
    for x in (3.0, 3.5, 2.5, 3.0):
        m.observe([x])
    s = m.observe([3.0], learn=False)
    assert s.predicted_ms is not None and s.low_ms is not None and s.high_ms is not None
    assert s.low_ms == pytest.approx(s.predicted_ms * math.exp(-s.spread))
    assert s.high_ms == pytest.approx(s.predicted_ms * math.exp(s.spread))
    assert NO_SCORE.low_ms is None and NO_SCORE.high_ms is None


def test_a_request_without_sql_may_leave_the_query_metrics_out_until_one_had_sql() -> None:
    full, short = EndpointModel(warmup=3), EndpointModel(warmup=3)
    assert full.metrics[:2] == ("latency", "cpu") and not short.queried
    for i in range(40):
        x, cpu = math.log(10.0 + i % 3), math.log1p(2.0 + i % 2)
        assert full.update(x, [cpu, 0.0, 0.0, 0.0, None]) == short.update(x, [cpu])
    assert full.state() == short.state()
    # once the endpoint ran SQL, a request without any must teach the query metrics zero
    short.update(math.log(10.0), [None, math.log1p(5), math.log1p(2.0), 0.0, None])
    short.queried = True
    clone = EndpointModel(warmup=3)
    clone.load_state(short.state())
    assert clone.queried and not full.queried
    level = short.level[2]
    short.update(math.log(10.0), [None, 0.0, 0.0, 0.0, None])
    assert 0.0 < short.level[2] < level


def test_floors_of_unseen_metrics_are_those_of_a_full_refresh_also_after_a_new_threshold() -> None:
    def full_floors(model: EndpointModel) -> list[float]:
        twin = EndpointModel(metrics=model.metrics, threshold=model.threshold)
        twin.level, twin.var = list(model.level), list(model.var)
        twin.floors_k = -1.0  # force every floor
        twin._refresh_floors()
        return twin.floors

    unseen = slice(2, 5)  # queries, query_time, repeat_share
    model = EndpointModel()
    for i in range(100):
        model.update(math.log(5.0 + i % 3), [math.log1p(2.0)])  # never any SQL
    assert model.floors[unseen] == full_floors(model)[unseen]
    model.threshold = 4.5  # the registry retunes k
    for i in range(64):
        model.update(math.log(5.0 + i % 3))
    assert model.floors[unseen] == full_floors(model)[unseen]
    assert model.floors[unseen] != EndpointModel().floors[unseen]
    assert model.floors2 == [f * f for f in model.floors]


def test_floors_are_refreshed_on_every_warmup_update_then_every_32nd() -> None:
    """The floors (a metric's smallest spread) follow the spread on every update of the
    warm-up, then once in 32 updates: seen as the updates after which they moved."""
    model = EndpointModel(metrics=("latency",), warmup=5)
    moved: list[int] = []
    floors = list(model.floors)
    for i in range(100):
        model.update(math.log(5.0 + i % 3))
        if model.floors != floors:
            moved.append(model.n)
            floors = list(model.floors)
    assert moved == [1, 2, 3, 4, 5, 32, 64, 96]


def test_impossible_latencies_are_counted_and_change_nothing() -> None:
    m = EndpointModel(window=60.0)
    for i in range(100):
        m.update(math.log(20.0 + i % 7), None, True, float(i))
    before = (m.state(), m.view, m.n)
    for bad in (math.nan, math.inf, -math.inf, math.log(1e9 * 1000), -50.0):
        assert m.update(bad, None, True, 100.0) == (0.0, False, -1, None)
    assert m.rejected == 5
    assert (m.state(), m.view, m.n) == before
    assert m.update(math.log(21.0), None, True, 101.0)[0] == 0.0  # still learning normally
    assert m.n == 101


def test_a_clock_jumping_back_a_day_does_not_freeze_the_incident_windows() -> None:
    m = EndpointModel(window=60.0)
    t = 100_000.0
    for i in range(3000):  # 20 requests a minute
        m.update(math.log(20.0 + i % 7), None, True, t)
        t += 3.0
    t -= 86_400.0  # the wall clock goes back a day
    closed = []
    for i in range(2000):  # then the endpoint becomes 4x slower
        verdict = m.update(math.log(80.0 + i % 7), None, True, t)[3]
        if verdict is not None:
            closed.append(verdict)
        t += 3.0
    assert len(closed) >= 90  # a window a minute, not one window for a day
    assert any(v.is_anomaly for v in closed)
