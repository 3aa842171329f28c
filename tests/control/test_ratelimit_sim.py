"""The rate-limit simulation benchmark: pulsegate against static limiters on the same
request stream, and the closed-loop evaluation whose scores can fail (per request, not
excess over an allowance)."""

from __future__ import annotations

import random
from types import ModuleType

from script_loader import load_script


def load(name: str) -> ModuleType:
    return load_script(f"benchmarks/{name}.py")


def test_adaptive_limiter_beats_the_static_bucket_on_the_original_stream() -> None:
    sim = load("ratelimit_sim")
    pg, static = sim.simulate(600.0, 7, moving_window=False)  # the benchmark's default run
    assert pg["legit_throttled"] <= 0.5, pg
    assert static["legit_throttled"] > 3 * pg["legit_throttled"]
    # Behaviour-aware: fewer abusive requests get through, including the ones under the rate.
    assert pg["abusive_admitted"] < static["abusive_admitted"] - 10
    assert pg["by_kind"]["lowslow"] > 10.0 and static["by_kind"]["lowslow"] == 0.0
    assert pg["by_kind"]["steady"] == 0.0


def test_scores_are_per_request_and_span_the_whole_range() -> None:
    clients = load("ratelimit_clients")
    deny = clients.scores(clients.run_mix("original", 1, 60.0, lambda *a: False))
    allow = clients.scores(clients.run_mix("original", 1, 60.0, lambda *a: True))
    assert deny == (100.0, 0.0) and allow == (0.0, 100.0)


def test_adaptive_attacker_backs_off_on_refusal_and_creeps_up_when_admitted() -> None:
    clients = load("ratelimit_clients")
    gen = clients.aimd_attacker(random.Random(1), "ua")
    t0 = next(gen)[0]
    t1 = gen.send(True)[0]
    t2 = gen.send(True)[0]
    assert (t2 - t1) < (t1 - t0)  # faster after each admitted request
    t3 = gen.send(False)[0]
    assert (t3 - t2) > 3 * (t2 - t1)  # halved rate, and waited an interval


def test_dominance_check_finds_a_static_rate_better_on_both_axes() -> None:
    sim = load("ratelimit_sim")
    result = {"pulsegate": (5.0, 40.0),
              "static": {("token bucket", 60): (4.0, 40.0), ("token bucket", 30): (9.0, 20.0)}}
    assert sim.dominated_by(result) == [("token bucket", 60)]
    result["pulsegate"] = (4.0, 30.0)
    assert sim.dominated_by(result) == []


def test_behaviour_beats_every_static_strategy_at_the_nominal_rate_on_the_original_mix() -> None:
    sim = load("ratelimit_sim")
    r = sim.evaluate_mix("original", 2, 180.0, sweep=(60,))
    lp, ap = r["pulsegate"]
    for (strategy, _), (ls, as_) in r["static"].items():
        assert lp <= ls and ap < as_ - 10, (strategy, r["pulsegate"], (ls, as_))
