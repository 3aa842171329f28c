"""Multivariate model: features, reservoir sampling, training on the scheduler, blend,
incidents, versioning."""

from __future__ import annotations

import math
import random

import pytest

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.learn.multivariate import (
    MultivariateModel,
    Reservoir,
    feature_bounds,
    range_score,
    repeated_share,
    request_features,
)
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo


def test_request_features_by_hand() -> None:
    v = request_features(100.0, 20.0, -5, 3, 0.5, 503, 7 * 3600 + 59.0)
    assert v == (pytest.approx(math.log(100.0)), pytest.approx(math.log(21.0)),
                 pytest.approx(-math.log(6.0)), pytest.approx(math.log(4.0)), 0.5, 5.0, 7.0)
    assert request_features(0.0, -1.0, None, 0, 0.0, 200, 0.0)[:3] == (
        pytest.approx(math.log(1e-3)), 0.0, 0.0)


def test_repeated_share() -> None:
    assert repeated_share([]) == 0.0
    assert repeated_share(["a", "a", "a", "b"]) == pytest.approx(0.5)


def test_reservoir_is_bounded_and_uniform() -> None:
    r = Reservoir(500, random.Random(3))
    for i in range(50_000):
        if r.due():
            r.put((float(i),) * 7)  # type: ignore[arg-type]
    assert r.seen == 50_000 and len(r.items) == 500
    mean = sum(v[0] for v in r.items) / 500
    # uniform over 0..49999: mean 25000, sd of the mean ~ 14434/sqrt(500) ~ 645
    assert abs(mean - 25_000) < 3 * 645
    late = sum(1 for v in r.items if v[0] >= 25_000)
    assert 200 < late < 300


def normal_vec(rng: random.Random) -> tuple[float, ...]:
    return request_features(rng.lognormvariate(math.log(20), 0.2), 5.0, 10, 2, 0.0, 200, 0.0)


def test_train_score_and_blend() -> None:
    rng = random.Random(5)
    m = MultivariateModel(sample_size=512, min_samples=64, weight=0.5)
    assert m.score_vectors("g", [normal_vec(rng)]) is None  # type: ignore[list-item]
    for _ in range(2000):
        m.observe("g", normal_vec(rng))  # type: ignore[arg-type]
    assert m.train() == 1 and m.version == 1 and m.version_string() == "iforest-1"
    assert m.train() == 0  # no new data, no retraining
    normal = m.score_vectors("g", [normal_vec(rng) for _ in range(50)])  # type: ignore[misc]
    # an N+1 after a deploy: slower, busier, 40 statements mostly repeated
    odd = request_features(120.0, 40.0, 500, 40, 0.95, 200, 0.0)
    [s_odd] = m.score_vectors("g", [odd]) or [0.0]
    assert normal is not None and sum(normal) / 50 < 0.5 < s_odd
    # noisy-OR at weight 0.5; the weights' extremes give one score alone
    assert m.blend(0.2, 0.8) == pytest.approx(1 - 0.8 * 0.2)
    assert m.blend(0.3, 0.3) > 0.5 > max(0.3, 0.3)
    assert MultivariateModel(weight=0.0).blend(0.2, 0.9) == pytest.approx(0.2)
    assert MultivariateModel(weight=1.0).blend(0.2, 0.9) == pytest.approx(0.9)
    # weight 0.75: exponents 1/3 and 1
    assert MultivariateModel(weight=0.75).blend(0.5, 0.5) == pytest.approx(
        1 - 0.5 ** (1 / 3) * 0.5)


def test_share_score_and_range_guard_by_hand() -> None:
    assert MultivariateModel.share_score([]) == 0.0
    # 1 of 10 anomalous: q = 0.1 = the half point
    assert MultivariateModel.share_score([0.9] + [0.1] * 9) == pytest.approx(0.5)
    assert MultivariateModel.share_score([0.9] * 3 + [0.1] * 7) == pytest.approx(
        0.09 / (0.09 + 0.01))
    sample = [(float(i),) * 7 for i in range(201)]  # 0..200 in every feature
    bounds = feature_bounds(sample)  # type: ignore[arg-type]
    assert bounds[0] == (1.0, 199.0, 100.0)  # q0.005 -> index 1, q0.995 -> 199, IQR 150-50
    v = (199.0 + 300.0,) + (100.0,) * 6  # 3 scales beyond the top of feature 0
    assert range_score(bounds, v) == pytest.approx(0.5)
    assert range_score(bounds, (100.0,) * 7) == 0.0
    # a constant feature still gets a scale (min_scale 0.25)
    flat = feature_bounds([(1.0,) * 7] * 50)  # type: ignore[list-item]
    assert flat[3] == (1.0, 1.0, 0.25)


def serve(gate: PulseGate, clock: FakeClock, ms: float, queries: int = 2, distinct: bool = True,
          status: int = 200) -> None:
    ctx = gate.begin(RequestInfo("GET", "/items", "/items"))
    assert ctx is not None
    for i in range(queries):
        ctx.add_query(QueryEvent(sql=f"SELECT {i if distinct else 0}", duration_ms=0.1))
    clock.t += ms / 1000
    gate.response_headers(ctx, status)
    gate.finish(ctx)


def test_gate_trains_on_scheduler_and_reports_multivariate_incident() -> None:
    clock = FakeClock(0.0)
    gate = PulseGate(clock=clock, cpu_clock=lambda: 0.0, wall=lambda: 1.7e9,
                     multivariate=True, multivariate_interval=60.0,
                     multivariate_sample_size=256,
                     measure_memory=False)
    mv = gate.multivariate
    assert isinstance(mv, MultivariateModel)
    rng = random.Random(9)
    for _ in range(600):
        serve(gate, clock, rng.lognormvariate(math.log(20), 0.1))
    assert mv.version == 0  # nothing trains on the request path
    # the scheduler keeps its own (monotonic) clock: run what is due a minute from now
    gate.scheduler.run_pending(gate.scheduler.clock() + 61)
    assert mv.version == 1 and mv.stats()["trained_groups"] == 1
    assert not [i for i in gate.incidents if i.get("source") == "multivariate"]
    # a deploy brings an N+1 at unchanged latency: invisible to the latency model,
    # caught by the multivariate one (query count and repeated share out of range)
    for _ in range(300):
        serve(gate, clock, rng.lognormvariate(math.log(20), 0.1), queries=30, distinct=False)
    gate.scheduler.run_pending(gate.scheduler.clock() + 200)
    gate.scheduler.stop()
    found = [i for i in gate.incidents if i.get("source") == "multivariate"]
    assert len(found) == 1 and found[0]["endpoint"] == "GET /items"
    assert found[0]["multivariate"] > 0.5 and found[0]["model_version"].startswith("iforest-")
    assert found[0]["score"] >= 0.5 and found[0]["univariate"] < 0.5


def test_listener_cost_is_small_for_unsampled_requests() -> None:
    m = MultivariateModel(sample_size=64, min_samples=16)
    rng = random.Random(1)
    for _ in range(10_000):
        m.observe("g", normal_vec(rng))  # type: ignore[arg-type]
    g = m.groups["g"]
    g.stride = 10**9
    sampled = sum(m.wants("g") is not None for _ in range(100_000))
    # algorithm L keeps about k*ln(N2/N1) of the later items: 64*ln(110000/10000) ~ 153
    assert sampled < 400


def test_constructor_validation() -> None:
    for kwargs in ({"sample_size": 8}, {"contamination": 0.0}, {"weight": 1.5},
                   {"min_samples": 5000}):
        with pytest.raises(ValueError):
            MultivariateModel(**kwargs)  # type: ignore[arg-type]


def test_retraining_does_not_learn_an_ongoing_incident_unless_it_is_the_new_normal() -> None:
    rng = random.Random(11)
    odd = request_features(20.0, 5.0, 10, 30, 0.9, 200, 0.0)
    m = MultivariateModel(sample_size=400, min_samples=100)
    for _ in range(400):
        m.observe("g", normal_vec(rng))  # type: ignore[arg-type]
    m.train()
    g = m.groups["g"]
    for i in range(40):  # the reservoir is full: replace 40 of 400 with the incident
        g.reservoir.items[i] = odd  # type: ignore[assignment]
    g.reservoir.seen += 1
    m.train()
    [s] = m.score_vectors("g", [odd]) or [0.0]
    assert s > 0.5  # a 10 % minority flagged by the previous forest is left out
    for i in range(300):  # now 75 % of the sample: behaviour has changed for good
        g.reservoir.items[i] = odd  # type: ignore[assignment]
    g.reservoir.seen += 1
    m.train()
    [s] = m.score_vectors("g", [odd]) or [1.0]
    assert s < 0.5
