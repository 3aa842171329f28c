import pytest

from pulsegate.registry.feedback import (
    Label,
    PerformanceMonitor,
    PredictionLog,
    from_counts,
    metrics_of,
)


def test_metrics_hand_computed() -> None:
    # TP=3, FP=1, TN=4, FN=2
    m = from_counts(3, 1, 4, 2)
    assert m.n == 10
    assert m.accuracy == pytest.approx(0.7)
    assert m.precision == pytest.approx(0.75)
    assert m.recall == pytest.approx(0.6)
    assert m.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    pairs = [(True, True)] * 3 + [(True, False)] + [(False, False)] * 4 + [(False, True)] * 2
    assert metrics_of(pairs) == m


def test_undefined_ratios_are_none() -> None:
    m = from_counts(0, 0, 5, 0)
    assert m.precision is None and m.recall is None and m.f1 is None and m.accuracy == 1.0
    assert from_counts(0, 0, 0, 0).accuracy is None
    assert from_counts(0, 2, 0, 3).f1 == 0.0


def _label(i: int, predicted: bool, actual: bool, score: float = 0.6) -> Label:
    return Label(f"id{i}", "request", score, predicted, actual, float(i))


def test_windows_and_all_time() -> None:
    mon = PerformanceMonitor()
    for i in range(1000):  # first 1000: all wrong alarms
        mon.record("m", _label(i, True, False))
    for i in range(1000, 1100):  # last 100: all right
        mon.record("m", _label(i, True, True))
    assert mon.metrics("m", 100).precision == 1.0
    assert mon.metrics("m", 1000).precision == pytest.approx(0.1)
    assert mon.metrics("m").precision == pytest.approx(100 / 1100)
    s = mon.summary()["m"]
    assert set(s) == {"last_100", "last_1000", "all_time"} and s["all_time"]["n"] == 1100


def test_relabel_replaces_previous_label() -> None:
    mon = PerformanceMonitor()
    mon.record("m", _label(1, True, False))
    mon.record("m", _label(1, True, True))
    m = mon.metrics("m")
    assert (m.n, m.tp, m.fp) == (1, 1, 0)
    assert mon.metrics("m", 100).tp == 1


def test_prediction_log_is_bounded_and_ids_unique() -> None:
    log = PredictionLog(capacity=10, tag="abc123")
    objs = [object() for _ in range(25)]
    ids = [log.add("m", "request", 0.6, True, float(i), obj=o).id for i, o in enumerate(objs)]
    assert len(set(ids)) == 25 and all(i.startswith("abc123-") for i in ids)
    assert len(log) == 10
    assert log.get(ids[0]) is None and log.get(ids[-1]) is not None
    assert log.id_of(objs[-1]) == ids[-1] and log.id_of(objs[0]) is None
    assert [p.id for p in log.recent(3)] == ids[:-4:-1]
    # two logs (two processes) never share ids
    assert PredictionLog().tag != PredictionLog().tag
