"""Health scores and pick_upstream: the formula, and its use against real upstreams."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest

import pulsegate.outbound
from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.outbound import health_score as hf
from pulsegate.outbound.hooks import uninstrument


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture()
def gate(clock: FakeClock) -> Iterator[PulseGate]:
    gate = PulseGate(clock=clock)
    yield gate
    uninstrument()
    gate.close()


def test_the_formula() -> None:
    usual = math.log(100.0)
    assert hf.health(1.0, usual, usual) == 1.0
    assert hf.health(1.0, math.log(300.0), usual) == pytest.approx(1 / 3)
    assert hf.health(0.5, math.log(50.0), usual) == 0.5   # faster is no better than usual
    assert hf.recovered(0.2, 0.0, 30.0) == 0.2
    assert hf.recovered(0.2, 60.0, 30.0) == pytest.approx(0.8)


def test_pick_prefers_unknown_then_healthiest_then_fastest() -> None:
    assert hf.pick([("a", 0.9, 10.0), ("b", None, None)]) == 1
    assert hf.pick([("a", 0.5, 10.0), ("b", 0.9, 50.0)]) == 1
    assert hf.pick([("a", 0.93, 40.0), ("b", 0.95, 50.0)]) == 0   # a tie: the faster
    with pytest.raises(ValueError):
        hf.pick([])


def test_a_failing_upstream_loses_its_traffic_and_gets_it_back(
        upstream, second_upstream, gate: PulseGate, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    good, bad = upstream.url, second_upstream.url
    candidates = [bad, good]
    with httpx.Client() as client:
        picks = []
        for _ in range(40):
            chosen = pulsegate.outbound.pick_upstream(gate, candidates)
            picks.append(chosen)
            if chosen == bad:   # it fails a run of calls before being dropped
                for _ in range(10):
                    client.get(f"{chosen}/fail")
            else:
                client.get(f"{chosen}/ok")
            clock.t += 0.1
    assert picks[:2] == [bad, good]          # both measured first
    assert picks[2:] == [good] * 38
    assert pulsegate.outbound.health(gate, bad) < 0.5  # type: ignore[operator]
    assert pulsegate.outbound.health(gate, good) == pytest.approx(1.0)
    clock.t += 120.0                         # four half-lives unobserved: tried again
    assert pulsegate.outbound.health(gate, bad) > 0.9  # type: ignore[operator]


def test_pick_without_monitoring_is_the_first(gate: PulseGate) -> None:
    assert pulsegate.outbound.pick_upstream(gate, ["http://a", "http://b"]) == "http://a"


def test_an_upstream_that_slows_down_loses_health_and_raises_an_incident(clock: FakeClock) -> None:
    """The latency half of the score and the incident come from the upstream's own unit
    model (UPSTREAM <upstream> in the gate's baselines), fed by the calls."""
    gate = PulseGate(clock=clock, wall=clock, aggregation_window=5.0, seasonality="off")
    try:
        monitor = pulsegate.outbound.attach(gate)
        up = "https://pricing.example"

        def window(ms: float) -> None:
            for i in range(40):
                monitor.call(up, "/price/{id}", ms * (1 + 0.1 * ((i * 7) % 5 - 2)) / 1000,
                             200, "success")
                clock.t += 5.0 / 40
                if i % 8 == 7:
                    monitor.drain()   # the scheduler's job

        for _ in range(40):
            window(20.0)
        assert pulsegate.outbound.health(gate, up) == pytest.approx(1.0, abs=0.05)
        assert gate.baselines.peek(f"UPSTREAM {up}") is not None
        for _ in range(6):
            window(100.0)
        assert pulsegate.outbound.health(gate, up) < 0.5  # type: ignore[operator]
        flagged = [i for i in gate.incidents() if i.endpoint == f"UPSTREAM {up}"]
        assert flagged and flagged[0].ratio > 3
        row = pulsegate.outbound.report(gate)["upstreams"][0]
        assert row["latency_ms"] > 50
    finally:
        gate.close()


def test_a_drain_learns_a_bounded_uniform_sample_of_calls(clock: FakeClock) -> None:
    from pulsegate.outbound.monitor import LEARN_PER_DRAIN

    gate = PulseGate(clock=clock)
    try:
        monitor = pulsegate.outbound.attach(gate)
        for i in range(1000):
            monitor.call("https://a", "/x", 0.01, 500 if i % 2 else 200,
                         "failure" if i % 2 else "success")
        monitor.drain()
        runs = gate.stats()["units"]["UPSTREAM"]["runs"]
        assert sum(runs.values()) == LEARN_PER_DRAIN
        assert runs["failure"] >= 1 and runs["success"] >= 1
    finally:
        gate.close()
