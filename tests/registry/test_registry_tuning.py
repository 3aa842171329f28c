import itertools

import pytest

from pulsegate.registry.feedback import Label, PerformanceMonitor
from pulsegate.registry.models import ModelRegistry
from pulsegate.registry.tuning import ThresholdTuner, best_threshold, f1_at, grid


def test_grid() -> None:
    assert grid() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    assert grid(0.2, 0.2, 0.1) == [0.2]
    with pytest.raises(ValueError):
        grid(0.5, 0.4, 0.1)


def labels(pairs):
    return [Label(f"x{i}", "request", s, True, a, 100.0 + i) for i, (s, a) in enumerate(pairs)]


def test_f1_at_and_best_threshold() -> None:
    # false alarms score 0.55-0.65, real anomalies 0.75-0.95
    data = labels([(0.55, False), (0.6, False), (0.65, False), (0.75, True), (0.85, True),
                   (0.95, True)])
    assert f1_at(data, 0.5) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_at(data, 0.7) == 1.0
    t, f = best_threshold(data, grid(), current=0.5)
    assert (t, f) == (0.7, 1.0)  # 0.7 and 0.75 tie: the one nearest the current wins


def make(n_false: int, n_true: int, wall: float = 1000.0):
    reg = ModelRegistry(itertools.count(1).__next__)
    reg.register("m", {"threshold": 0.5})
    mon = PerformanceMonitor()
    pairs = [(0.6, False)] * n_false + [(0.8, True)] * n_true
    for lb in labels(pairs):
        mon.record("m", lb)
    tuner = ThresholdTuner(reg, mon, wall=lambda: wall, min_labels=50, window=3600)
    return reg, tuner


def test_tuning_applies_a_significant_gain_as_a_new_version() -> None:
    reg, tuner = make(30, 30)
    r = tuner.tune("m")
    assert r.reason == "applied" and r.best == 0.65 and r.best_f1 == 1.0
    assert r.current_f1 == pytest.approx(2 / 3)
    assert reg.active("m").version == "1.1.0" and reg.active("m").config["threshold"] == 0.65
    assert "auto-tuned" in reg.active("m").note
    reg.rollback("m", "1.0.0")
    assert reg.active("m").config["threshold"] == 0.5


def test_tuning_needs_enough_labels() -> None:
    reg, tuner = make(20, 20)
    assert tuner.tune("m").reason == "not enough labels"
    assert reg.active("m").version == "1.0.0"


def test_tuning_ignores_gains_under_the_minimum() -> None:
    # 1 false alarm among 60 true: F1 at 0.5 is 0.992, the best 1.0 is < 5 % better
    reg, tuner = make(1, 60)
    r = tuner.tune("m")
    assert r.best_f1 == 1.0 and r.reason == "no significant improvement"
    assert reg.active("m").version == "1.0.0"


def test_tuning_only_looks_at_the_window() -> None:
    reg, tuner = make(30, 30, wall=1000.0 + 7200)  # every label is older than the window
    assert tuner.tune("m").samples == 0
