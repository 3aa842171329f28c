"""Every exporter counts an anomaly from the record's own verdict (``anomalous``), not
from the gate's shared ``recent_anomalies``: under a threaded server another request's
anomaly may be appended there between the engine's append and the listeners' turn, and
"is my record the newest?" then misses one."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from exportkit import FakeClock, make_gate
from prometheus_client import CollectorRegistry

from pulsegate.engine import PulseGate
from pulsegate.export import prometheus
from pulsegate.records import RequestInfo, RequestRecord


def serve(gate: PulseGate, clock: FakeClock, ms: float) -> RequestRecord | None:
    ctx = gate.begin(RequestInfo("GET", "/work/1", "/work/{item}"))
    assert ctx is not None
    clock.t += ms / 1000.0
    gate.response_headers(ctx, 200)
    return gate.finish(ctx)


def another_thread_finishes_an_anomaly_first(gate: PulseGate, clock: FakeClock) -> None:
    """Put, ahead of every listener, one that lets a second request -- on its own
    thread -- finish its own anomaly while the first request's listeners wait."""
    busy = threading.Event()

    def interleave(record: RequestRecord, ctx: Any) -> None:
        if busy.is_set() or record.duration_ms < 400:  # the first slow request only
            return
        busy.set()  # the second request's own listeners pass straight through
        other = threading.Thread(target=serve, args=(gate, clock, 600.0))
        other.start()
        other.join(10)

    gate.listeners.insert(0, interleave)
    gate.notable_listeners.insert(0, interleave)


def test_two_anomalies_finishing_together_are_both_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gate = make_gate(clock, log_events=True)
    registry = CollectorRegistry()
    prometheus.install(gate, registry)
    for i in range(30):
        serve(gate, clock, 10.0 + i % 3)
    another_thread_finishes_an_anomaly_first(gate, clock)
    with caplog.at_level(logging.INFO, logger="pulsegate"):
        first = serve(gate, clock, 500.0)
        gate.scheduler.run_all()  # the log exporter writes its queue once a second
    assert gate.counters["anomalies"] == 2
    assert len(gate.recent_anomalies) == 2 and gate.recent_anomalies[0] is first
    counted = registry.get_sample_value("pulsegate_anomalies_total",
                                        {"route": "/work/{item}", "method": "GET"})
    assert counted == 2
    lines = [r for r in caplog.records if "anomalous request" in r.getMessage()]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    assert first is not None and first.anomalous
    gate.close()


def test_a_request_under_warm_up_is_not_anomalous_on_its_record() -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    serve(gate, clock, 10.0)
    slow = serve(gate, clock, 900.0)  # the model has one request: warm-up
    assert slow is not None and not slow.anomalous and not gate.recent_anomalies
    gate.close()
