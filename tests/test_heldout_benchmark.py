"""The held-out evaluation chooses without the category it scores, and the generated
test series are what they say (the figures are the benchmark's business)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import generated_series
import heldout


def _fake_scorer() -> Any:
    """NAB's interface in miniature: a point is (score, window or None, weight); a window
    scores +1 when some point in it reaches the threshold, else -1; a false positive
    costs 0.1."""

    def score_at(points: list[Any], profile: str, thr: float) -> Any:
        wins = {w for _, w, _ in points if w is not None}
        hit = {w for s, w, _ in points if w is not None and s >= thr}
        fp = sum(1 for s, w, _ in points if w is None and s >= thr)
        raw = len(hit) - (len(wins) - len(hit)) - 0.1 * fp
        return (raw, thr, len(hit), len(wins) - len(hit), fp), len(wins)

    def best_threshold(points: list[Any], profile: str) -> Any:
        return max((score_at(points, profile, t) for t in {p[0] for p in points} | {1.1}),
                   key=lambda r: r[0][0])

    return SimpleNamespace(score_at=score_at, best_threshold=best_threshold,
                           PROFILES={"standard": (1.0, 0.11, 1.0)})


def test_each_category_is_scored_with_a_choice_made_on_the_others() -> None:
    ns = _fake_scorer()
    # "sharp" finds the window of A only; "blunt" those of B and C.
    sharp = heldout.Candidate("sharp", lambda ts, v: [], 0.5, {
        "A": [(0.9, "a", 1.0)], "B": [(0.1, "b", 1.0), (0.5, None, 1.0)],
        "C": [(0.1, "c", 1.0)]})
    blunt = heldout.Candidate("blunt", lambda ts, v: [], 0.5, {
        "A": [(0.1, "a", 1.0)], "B": [(0.9, "b", 1.0)], "C": [(0.9, "c", 1.0)]})
    rep = heldout.report(ns, [sharp, blunt], ["A", "B", "C"])
    # chosen on B and C, "blunt" misses A's window: A's held-out score is the worst
    assert rep.categories["A"][2] == "blunt"
    assert rep.categories["A"][1] == 0.0
    assert rep.categories["B"][1] > 90.0
    assert rep.total_out < rep.total_in


def test_spearman_ranks() -> None:
    assert heldout.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert heldout.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert heldout.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_generated_suite_is_fixed_and_labels_one_window_per_anomalous_series() -> None:
    first = list(generated_series.suite())
    again = list(generated_series.suite())
    assert [s[2] for s in first] == [s[2] for s in again]
    for name, ts, values, windows in first:
        assert len(values) == len(ts) == generated_series.ROWS
        assert len(windows) == (0 if name.split("/")[1].startswith("none") else 1)
        for lo, hi in windows:
            assert ts.index(lo) < ts.index(hi)
    # the labelled shapes are in the values: the drop to zero is a run of zeros
    drop = next(v for n, _, v, _ in first if "drop_to_zero" in n)
    assert any(drop[i:i + 24] == [0.0] * 24 for i in range(len(drop)))


def test_fresh_generated_series_are_new_values_with_the_same_shapes() -> None:
    own = {n: (v, w) for n, _, v, w in generated_series.suite()}
    fresh = list(generated_series.suite(1000))
    assert len(fresh) == len(own)
    for name, _, values, windows in fresh:
        kind, tag = name.split("/")
        base = next(k for k in own if k.startswith(f"{kind}/{tag.rsplit('_', 1)[0]}_"))
        assert values != own[base][0] and len(windows) == len(own[base][1])


def test_shape_rates_count_series_flagged_near_their_onset() -> None:
    onsets = {}
    for family, anomaly, _ in generated_series.SUITE:
        if anomaly:
            values, onset = generated_series.series(family, anomaly, 3000)
            onsets[tuple(values)] = onset

    def at_onset(ts: list[str], values: list[float]) -> list[float]:
        """Alarms on the onset row of the labelled series these values are."""
        onset = onsets.get(tuple(values), -1)
        return [1.0 if i == onset else 0.0 for i in range(len(values))]

    rates = generated_series.shape_rates(at_onset, 0.5, seeds=(3000,))
    assert all(got == (1, 1) for got in rates.values())
    never = generated_series.shape_rates(lambda ts, v: [0.0] * len(v), 0.5)
    assert never["cpu/oscillation"] == (0, 1) and never["cpu/bump_30pct"] == (0, 2)
    late = generated_series.shape_rates(at_onset, 0.5, seeds=(3000,), within=0)
    assert all(got == (0, 1) for got in late.values())


def test_incident_streams_flag_a_regression_and_leave_an_unchanged_endpoint_alone() -> None:
    import random

    import incident_streams as streams

    quiet = streams.run(streams.requests(random.Random(1), 1.0, 1.0))
    assert quiet == []
    onset = 0.5 * streams.DAY
    fired = streams.run(streams.requests(random.Random(2), 1.0, 0.6, "p50_4x", onset, 3600.0))
    assert fired and onset <= fired[0] <= onset + 900.0


def test_incident_streams_through_the_engine_flag_an_error_burst() -> None:
    import random

    import incident_streams as streams

    onset = 0.5 * streams.DAY
    fired = streams.run_engine(streams.requests(random.Random(2), 1.0, 0.6, "error_burst",
                                                onset, 3600.0))
    assert fired and onset <= fired[0] <= onset + 900.0


def test_reliability_reports_the_share_inside_windows_per_bin(capsys: Any) -> None:
    cand = heldout.Candidate("c", lambda ts, v: [], 0.5, {
        "A": [(0.95, "a", 1.0), (0.95, None, 1.0), (0.55, None, 1.0), (0.1, None, 1.0)]})
    heldout.reliability(_fake_scorer(), cand, ["A"])
    out = capsys.readouterr().out
    assert "[0.9, 1.0]       2 rows  0.50" in out
    assert "[0.5, 0.6)       1 rows  0.00" in out
    assert "A 750.00" in out


def test_oracle_gain_is_what_one_threshold_for_every_series_costs() -> None:
    ns = _fake_scorer()
    same = {"x": [(0.9, "a", 1.0), (0.5, None, 1.0)], "y": [(0.9, "b", 1.0), (0.5, None, 1.0)]}
    one, own = heldout.oracle_gain(ns, same)
    assert one == own == 100.0
    # y's window scores below x's false alarm: no one threshold serves both
    apart = {"x": [(0.9, "a", 1.0)] + [(0.5, None, 1.0)] * 20,
             "y": [(0.4, "b", 1.0), (0.1, None, 1.0)]}
    one, own = heldout.oracle_gain(ns, apart)
    assert own == 100.0 and one == 50.0


def test_a_young_endpoint_judges_its_tail_against_an_upper_bound_of_the_learnt_share() -> None:
    """Seed 9003 at 1 req/s: in its first two hours the tail share is learnt low (0.4 %
    against ~0.7 % of GC pauses above the cut) and four unlucky windows made a false
    "latency tail" incident; judged against p + 2 standard errors, none."""
    import random

    import incident_streams as streams

    assert streams.run(streams.requests(random.Random(9003), 1.0, 2.5 / 24)) == []


def test_window_verdicts_tell_a_suppressed_miss_from_a_weak_one() -> None:
    alarm = 0.5
    # row 2: a routine spike alarms; rows 6-7 are as rare but its memory silences them
    lik = [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.6, 0.6, 0.0, 0.0, 0.3, 0.0, 0.7, 0.8]
    score = [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.8]
    verdicts = heldout.window_verdicts(score, lik, [(1, 3), (5, 8), (9, 11), (12, 13)],
                                       alarm)
    assert verdicts == ["hit", "hidden", "below", "late"]
