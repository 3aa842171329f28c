"""Issue 24, defect 2: an anomalous request names the metric that made it unusual (and
only rises count), in the record, the log line, the dashboard rows and the registry's
summary -- "critical anomaly: 20.9 ms (expected 22.5 ms)" said nothing of the query
count that had tripled."""

from __future__ import annotations

import logging

import pytest

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo, RequestRecord
from registry.registry_helpers import make_gate


def serve(gate: PulseGate, clk: FakeClock, ms: float, queries: int) -> RequestRecord | None:
    ctx = gate.begin(RequestInfo("GET", "/books", "/books"))
    assert ctx is not None
    for i in range(queries):
        ctx.add_query(QueryEvent(sql=f"SELECT * FROM book WHERE id = {i}", duration_ms=0.05))
    clk.t += ms / 1000.0
    gate.test_wall.t += ms / 1000.0  # type: ignore[attr-defined]
    gate.response_headers(ctx, 200)
    return gate.finish(ctx)


def warmed() -> tuple[PulseGate, FakeClock]:
    gate, clk = make_gate(warmup=5)
    for i in range(60):
        serve(gate, clk, 10.0 + (i % 3), 2)
    return gate, clk


def test_a_query_count_rise_is_named_as_such() -> None:
    gate, clk = warmed()
    record = serve(gate, clk, 10.0, 40)
    assert record is not None and record.anomaly_score > 0.9
    assert record.anomaly_metric == "queries"
    assert record.unusual == "query count above usual"
    assert gate.recent_anomalies[-1] is record
    gate.close()


def test_a_latency_rise_is_named_as_such_and_a_faster_request_is_not_unusual() -> None:
    gate, clk = warmed()
    slow = serve(gate, clk, 200.0, 2)
    assert slow is not None and slow.anomaly_metric == "latency"
    assert slow.unusual == "latency above forecast"
    fast = serve(gate, clk, 2.0, 2)
    assert fast is not None and fast.anomaly_metric is None and fast.unusual is None
    assert fast.anomaly_score == 0.0
    gate.close()


def test_the_log_line_and_the_dashboard_row_say_what_rose(
        caplog: pytest.LogCaptureFixture) -> None:
    gate, clk = make_gate(warmup=5)
    for i in range(60):
        serve(gate, clk, 10.0 + (i % 3), 2)
    with caplog.at_level(logging.INFO, logger="pulsegate.anomalies"):
        serve(gate, clk, 10.0, 40)
        gate.scheduler.run_pending(gate.scheduler.clock() + 10)
    lines = [r.getMessage() for r in caplog.records if r.name == "pulsegate.anomalies"]
    assert any("query count above usual" in line for line in lines), lines
    record = gate.recent_anomalies[-1]
    # the registry's summary of the prediction (CLI report, feedback, alerts)
    pid = gate.ops.predictions.id_of(record)
    assert pid is not None
    prediction = gate.ops.predictions.get(pid)
    assert prediction is not None and prediction.summary["metric"] == "queries"
    gate.close()


def test_the_header_scores_latency_only_and_the_finish_records_the_query_rise() -> None:
    """Decision 2 (2026-12-07): ``x-ml-anomaly-score`` is the time to headers against
    the latency forecast; a usual latency with 20x the queries scores 0 there, and the
    finished request is still the anomaly named by its query count."""
    gate, clk = warmed()
    ctx = gate.begin(RequestInfo("GET", "/books", "/books"))
    assert ctx is not None
    for i in range(40):
        ctx.add_query(QueryEvent(sql=f"SELECT * FROM book WHERE id = {i}", duration_ms=0.05))
    clk.t += 0.010
    gate.test_wall.t += 0.010  # type: ignore[attr-defined]
    headers = dict(gate.response_headers(ctx, 200))
    assert headers["x-ml-anomaly-score"] == "0.000" and headers["x-ml-query-count"] == "40"
    record = gate.finish(ctx)
    assert record is not None and record.anomaly_score > 0.9
    assert record.anomaly_metric == "queries" and gate.recent_anomalies[-1] is record
    gate.close()
