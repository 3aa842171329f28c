"""gate.incidents(): the public record of endpoints that changed."""

from __future__ import annotations

import dataclasses

import pytest

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.incidents import Incident
from pulsegate.records import RequestInfo


def shifted_gate() -> tuple[PulseGate, FakeClock]:
    """150 s at 10 ms (5 requests a second), then 50 s at 80 ms: one regression."""
    clock = FakeClock(100.0)
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t - 100.0, aggregation_window=1)
    for second in range(200):
        for _ in range(5):
            ms = 10.0 if second < 150 else 80.0
            ctx = gate.begin(RequestInfo("GET", "/x/1", "/x"))
            assert ctx is not None
            clock.t += ms / 1000
            gate.response_headers(ctx, 200)
            gate.finish(ctx)
            clock.t += 0.2 - ms / 1000
    return gate, clock


def test_incidents_returns_frozen_records_with_magnitude_and_evidence() -> None:
    gate, _ = shifted_gate()
    incidents = gate.incidents()
    assert 1 <= len(incidents) <= 3 and all(isinstance(i, Incident) for i in incidents)
    first = incidents[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.score = 0.0  # type: ignore[misc]
    assert first.endpoint == "GET /x"
    # flagged after the shift began (150 s in), on evidence gathered since then
    assert 1.7e9 + 148 <= first.start < first.at <= 1.7e9 + 160
    assert first.windows >= 2 and first.requests >= 5 * first.windows - 5
    assert first.expected_ms == pytest.approx(10.0, rel=0.2)
    assert first.window_mean_ms > 40
    assert first.ratio == pytest.approx(first.window_mean_ms / first.expected_ms)
    assert first.excess_ms == pytest.approx(first.window_mean_ms - first.expected_ms)
    assert 0.5 <= first.score <= 1.0


def test_incidents_attribute_stays_the_exporters_deque_of_dicts() -> None:
    gate, _ = shifted_gate()
    stored = list(gate.incidents)
    assert stored and stored[0]["endpoint"] == "GET /x"
    assert Incident(**{k: v for k, v in stored[0].items() if k != "id"}) == gate.incidents()[0]


def test_an_older_stored_record_still_reads() -> None:
    old = {"endpoint": "GET /a", "at": 5.0, "window_mean_ms": 30.0, "expected_ms": 10.0,
           "score": 0.6, "id": "incident-1"}
    i = Incident.from_dict(old)
    assert (i.start, i.ratio, i.excess_ms, i.requests, i.windows) == (5.0, 3.0, 20.0, 0, 0)


def test_an_error_burst_is_an_incident_named_by_its_error_rate() -> None:
    """Fast failures lower the latency: only the status says the endpoint broke."""
    clock = FakeClock(100.0)
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t - 100.0, aggregation_window=1)
    for second in range(260):
        for i in range(5):
            failing = (second >= 200 and i < 2) or (second * 5 + i) % 97 == 0
            ms = 2.0 if failing else 10.0
            ctx = gate.begin(RequestInfo("GET", "/x/1", "/x"))
            assert ctx is not None
            clock.t += ms / 1000
            gate.response_headers(ctx, 500 if failing else 200)
            gate.finish(ctx)
            clock.t += 0.2 - ms / 1000
    incidents = gate.incidents()
    assert len(incidents) == 1, incidents  # the ~1 % background failures: none
    burst = incidents[0]
    assert burst.metric == "error rate" and burst.direction == "above"
    assert 1.7e9 + 200 <= burst.at <= 1.7e9 + 215
    assert burst.error_rate >= 0.2 and burst.expected_error_rate < 0.05
    assert gate.incidents[0]["metric"] == "error rate"  # what the exporters read
