"""AnomalyModel on the generated operations series (benchmarks/generated_series.py):
each shape issue 16 lists is flagged at its onset, with timestamps as pulsegate runs
the model, and the quiet series of the same family raise no alarm."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import generated_series

from pulsegate.learn.anomaly import AnomalyModel


def alarms(family: str, anomaly: str | None, seed: int, **kw: float) -> tuple[list[int], int]:
    """Rows (relative to the onset) the default model alarms on."""
    values, onset = generated_series.series(family, anomaly, seed)
    t0 = generated_series.START.timestamp()
    model = AnomalyModel(**kw)  # type: ignore[arg-type]
    return [i - onset for i, v in enumerate(values)
            if model.update(v, at=t0 + generated_series.STEP * i).is_anomaly], onset


@pytest.mark.parametrize(("family", "anomaly", "seed", "within"), [
    ("latency", "regression_2x", 3, 2),    # a level shift
    ("latency", "regression_2x", 4, 2),
    ("cpu", "bump_30pct", 7, 2),           # a short bump (30 rows, +30 %)
    ("cpu", "bump_30pct", 8, 2),
    ("cpu", "spike_6mad", 9, 1),           # one value 6 robust deviations high
    ("cpu", "oscillation", 11, 12),        # noise turns into an oscillation
    ("cpu", "variance_3x", 12, 20),        # the spread triples
    ("requests", "drop_to_zero", 15, 3),   # silence against expected activity
    ("requests", "drop_to_zero", 16, 3),
    ("bytes", "burst_8x", 19, 1),          # a burst 8x the usual burst size
    ("bytes", "burst_8x", 20, 1),
])
def test_each_shape_is_flagged_at_its_onset(family: str, anomaly: str, seed: int,
                                            within: int) -> None:
    rows, _ = alarms(family, anomaly, seed)
    assert any(0 <= r < within for r in rows), rows


def test_quiet_utilisation_series_raise_no_alarm() -> None:
    for seed in (5, 6):
        rows, _ = alarms("cpu", None, seed)
        assert len(rows) <= 1, rows  # 4032 rows: at most one alarm in two weeks


def test_silence_after_a_routine_spike_is_still_flagged() -> None:
    """Seed 16: a routine 4x spike two rows before the outage raises an alarm whose
    suppression would silence the drop to zero; the silence stage reports it."""
    rows, _ = alarms("requests", "drop_to_zero", 16)
    assert -3 <= min(r for r in rows if r >= -3) < 0  # the spike
    assert any(0 <= r < 3 for r in rows)
    without, _ = alarms("requests", "drop_to_zero", 16, silence=0)
    assert not any(0 <= r < 24 for r in without)

