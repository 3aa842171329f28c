import math
import random

import pytest

from pulsegate.learn.endpoint import EndpointModel
from pulsegate.registry.merge import chan_merge, merge_endpoint_states, welford


def test_welford_matches_two_pass_formulas() -> None:
    xs = [1.0, 4.0, 4.0, 9.0, 2.5]
    n, mean, m2 = welford(xs)
    assert n == 5
    assert mean == pytest.approx(sum(xs) / 5)
    assert m2 == pytest.approx(sum((x - mean) ** 2 for x in xs))


def test_chan_merge_of_parts_equals_stats_of_the_whole() -> None:
    rng = random.Random(7)
    xs = [rng.gauss(5.0, 2.0) for _ in range(1000)]
    parts = [welford(xs[:100]), welford(xs[100:650]), welford(xs[650:])]
    whole = welford(xs)
    merged = chan_merge(parts)
    assert merged[0] == whole[0]
    assert merged[1] == pytest.approx(whole[1], rel=1e-12)
    assert merged[2] == pytest.approx(whole[2], rel=1e-9)
    # order does not matter; empty parts are ignored
    again = chan_merge([parts[2], (0, 123.0, 9.0), parts[0], parts[1]])
    assert again[1] == pytest.approx(whole[1]) and again[2] == pytest.approx(whole[2])


def test_chan_merge_hand_computed() -> None:
    # {1, 3} and {5}: mean 3, M2 = 4 + 0 + 4 = 8
    n, mean, m2 = chan_merge([(2, 2.0, 2.0), (1, 5.0, 0.0)])
    assert (n, mean, m2) == (3, 3.0, 8.0)


def _state(level: float, var: float, n: int) -> dict:
    m = EndpointModel(metrics=("latency", "queries"))
    for _ in range(n):
        m.observe([level, 1.0])
    st = m.state()
    st["level"][0], st["var"][0] = level, var
    return st


def test_single_row_is_returned_unchanged() -> None:
    st = _state(2.0, 0.01, 40)
    assert merge_endpoint_states([(st, 40)]) is st


def test_two_workers_merge_weighted_by_their_own_requests() -> None:
    a, b = _state(2.0, 0.04, 50), _state(3.0, 0.01, 30)
    out = merge_endpoint_states([(a, 30), (b, 10)])
    # Chan: n=40, mean = 2 + 1*10/40 = 2.25, M2 = 0.04*30 + 0.01*10 + 1*30*10/40
    assert out["level"][0] == pytest.approx(2.25)
    assert out["var"][0] == pytest.approx((1.2 + 0.1 + 7.5) / 40)
    assert out["n"] == 50  # max of the workers' counts (>= the 40 own requests)
    assert out["incident"] == a["incident"]  # the heaviest worker's incident model
    model = EndpointModel(metrics=("latency", "queries"))
    model.load_state(out)
    assert model.predict()[0] == pytest.approx(math.exp(2.25))


def test_workers_without_own_requests_fall_back_to_counts() -> None:
    a, b = _state(1.0, 0.0, 10), _state(2.0, 0.0, 30)
    out = merge_endpoint_states([(a, 0), (b, 0)])
    assert out["level"][0] == pytest.approx(1.75)
