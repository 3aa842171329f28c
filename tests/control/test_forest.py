from __future__ import annotations

import random

from pulsegate.control.behaviour import BehaviourModel
from pulsegate.control.forest import ForestScorer
from pulsegate.engine import PulseGate


def population(model: BehaviourModel, rng: random.Random) -> None:
    t = 0.0
    for i in range(120):  # ordinary browsing clients
        for _ in range(30):
            t += rng.expovariate(0.5)
            model.update(f"u{i}", t, "GET", "/p/{id}", f"/p/{rng.randrange(5)}",
                         404 if rng.random() < 0.03 else 200, "Firefox", "")
    for i in range(3):  # odd ones: moderate errors with some UA churn, regular timing
        for n in range(30):
            t += 1.0
            model.update(f"odd{i}", t, "POST", "/api/x", "/api/x",
                         403 if n % 3 else 200, f"ua{n % 4}", f"k={n}")


def test_forest_isolates_unusual_clients_and_raises_their_suspicion() -> None:
    model = BehaviourModel(1.0, 1000)
    population(model, random.Random(3))
    before = {k: model.profiles[k].suspicion for k in ("odd0", "odd1", "odd2", "u0", "u1")}
    scorer = ForestScorer(model, seed=0)
    assert scorer.run() == 123 and scorer.fitted
    odd = [model.profiles[f"odd{i}"].forest for i in range(3)]
    usual = sorted(model.profiles[f"u{i}"].forest for i in range(120))
    assert min(odd) > 0.5 and usual[len(usual) // 2] == 0.0
    # The next scoring of an odd client folds the forest's evidence in.
    p = model.update("odd0", 10_000.0, "POST", "/api/x", "/api/x", 403, "ua9", "k=x")
    assert p.suspicion > before["odd0"]


def test_forest_needs_enough_clients() -> None:
    model = BehaviourModel(1.0, 1000)
    for i in range(10):
        for n in range(12):
            model.update(f"c{i}", float(n), "GET", "/", "/", 200)
    scorer = ForestScorer(model)
    assert scorer.run() == 0 and not scorer.fitted


def test_gate_schedules_forest_only_when_enabled() -> None:
    off = PulseGate(rate_limiting=True)
    assert off.control.forest is None
    on = PulseGate(rate_limiting=True, behaviour_forest=True)
    on.scheduler.stop()
    assert on.control.forest is not None
    assert "control.forest" in on.scheduler.jobs and "control.forest" not in off.scheduler.jobs
    on.control._train_forest()  # too few clients: a no-op, not an error
    assert not on.control.forest.fitted
