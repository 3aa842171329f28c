"""A slow upstream named as the cause when several endpoints regress together: real
requests through a gate (on a clock of our own), real calls to a local upstream that
degrades, incidents from the endpoints' own detectors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import pulsegate.outbound
from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.io_tally import tally_of
from pulsegate.outbound.hooks import uninstrument
from pulsegate.records import RequestInfo


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def gate(clock: FakeClock) -> Iterator[PulseGate]:
    gate = PulseGate(clock=clock, wall=clock, aggregation_window=5.0, seasonality="off")
    yield gate
    uninstrument()
    gate.close()


def serve(gate: PulseGate, clock: FakeClock, client: httpx.Client, route: str, url: str | None,
          own_ms: float) -> None:
    """One request of ``route``: ``own_ms`` of its own work, plus the real wait in the
    upstream (``url``) added to the gate's clock."""
    ctx = gate.begin(RequestInfo("GET", route, route))
    assert ctx is not None
    if url is not None:
        client.get(url)
    tally = tally_of(ctx)
    clock.t += (own_ms + (tally.out_ms if tally is not None else 0.0)) / 1000.0
    gate.response_headers(ctx, 200)
    gate.finish(ctx)
    clock.t += 0.1


def test_two_endpoints_regressing_with_one_upstream_name_it(upstream, gate: PulseGate,  # type: ignore[no-untyped-def]
                                                            clock: FakeClock) -> None:
    pulsegate.outbound.instrument(gate)
    with httpx.Client() as client:
        def round_of_requests() -> None:
            serve(gate, clock, client, "/orders", f"{upstream.url}/ok", 10.0)
            serve(gate, clock, client, "/cart", f"{upstream.url}/ok", 12.0)
            serve(gate, clock, client, "/about", None, 20.0)   # calls no upstream

        for _ in range(400):        # learn: 40 s of windows of 5 s
            round_of_requests()
        degraded_at = clock.t
        upstream.extra_ms = 25.0    # the upstream degrades
        try:
            for _ in range(150):
                round_of_requests()
                flagged = {i["endpoint"] for i in gate.incidents if i["at"] >= degraded_at}
                if {"GET /orders", "GET /cart"} <= flagged:
                    break
        finally:
            upstream.extra_ms = 0.0
    monitor = pulsegate.outbound.monitor_of(gate)
    assert monitor is not None and monitor.causes is not None
    monitor.causes.run()        # the scheduler's job, run now
    causes = pulsegate.outbound.report(gate)["causes"]
    assert [c["upstream"] for c in causes] == [upstream.url]
    assert set(causes[0]["endpoints"]) == {"GET /orders", "GET /cart"}
    named = [i for i in gate.incidents if i.get("cause") and i["at"] >= degraded_at]
    assert {i["endpoint"] for i in named} == {"GET /orders", "GET /cart"}
    assert all(i["cause"] == f"upstream {upstream.url}" for i in named)


def test_one_endpoint_alone_names_no_cause(gate: PulseGate) -> None:
    monitor = pulsegate.outbound.instrument(gate)
    for _ in range(200):
        monitor.spent("GET /a", {"http://up": [1.0, 10.0]})
    for _ in range(50):
        monitor.spent("GET /a", {"http://up": [1.0, 200.0]})
    gate.incidents.append({"endpoint": "GET /a", "at": gate.wall(), "excess_ms": 150.0})
    assert monitor.causes is not None
    monitor.causes.run()
    assert monitor.causes.recent() == []
    gate.incidents.append({"endpoint": "GET /b", "at": gate.wall(), "excess_ms": 150.0})
    for _ in range(200):
        monitor.spent("GET /b", {"http://up": [1.0, 10.0]})
    for _ in range(50):
        monitor.spent("GET /b", {"http://up": [1.0, 200.0]})
    monitor.causes.run()
    assert [c["upstream"] for c in monitor.causes.recent()] == ["http://up"]
