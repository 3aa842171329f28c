"""Structured logs: anomalies and incidents queued on the request path, written by the
scheduler with ``extra`` fields; the JSON formatter renders them."""

from __future__ import annotations

import json
import logging
import random
import string
from typing import Any

import httpx
import pytest
from exportkit import FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.export import state
from pulsegate.export.logs import ANOMALY_LOGGER, JsonFormatter, detection_extra

WARM = [f"/work/{i}?ms={10 + i % 3}" for i in range(20)]


def token() -> str:
    """A path segment no route spells (letters only: not folded as an id)."""
    return "".join(random.Random(7).choices(string.ascii_letters, k=12))


async def run(app: Any, paths: list[str]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        for p in paths:
            await client.get(p)


async def test_anomaly_logged_off_the_request_path(clock: FakeClock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    secret = token()
    gate = make_gate(clock, log_events=True)
    logs = state(gate).logs
    assert logs is not None and "pulsegate.export.logs" in gate.scheduler.jobs
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    with caplog.at_level(logging.INFO, logger=ANOMALY_LOGGER):
        await run(app, [*WARM, f"/work/{secret}?ms=400"])
        assert not [r for r in caplog.records if r.name == ANOMALY_LOGGER]  # only queued
        assert logs.flush() == gate.counters["anomalies"] >= 1
    records = [r for r in caplog.records if r.name == ANOMALY_LOGGER]
    assert len(records) == gate.counters["anomalies"]
    rec = records[-1]
    a = rec.pulsegate_anomaly  # type: ignore[attr-defined]
    assert rec.endpoint == "GET /work/{item}"  # type: ignore[attr-defined]
    # the path is folded (fail-closed): a segment no route template spells is {*}
    assert a["path"] == "/work/{*}" and a["duration_ms"] == pytest.approx(400)
    assert a["score"] > 0.9 and a["predicted_ms"] < 20
    assert "400.0 ms" in rec.getMessage()
    line = json.loads(JsonFormatter().format(rec))
    assert line["logger"] == ANOMALY_LOGGER and line["pulsegate_anomaly"]["path"] == "/work/{*}"
    assert secret not in JsonFormatter().format(rec)
    assert line["endpoint"] == "GET /work/{item}"


async def test_raw_paths_logs_the_path_as_sent(clock: FakeClock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    secret = token()
    gate = make_gate(clock, log_events=True, raw_paths=True)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    with caplog.at_level(logging.INFO, logger=ANOMALY_LOGGER):
        await run(app, [*WARM, f"/work/{secret}?ms=400"])
        state(gate).logs.flush()  # type: ignore[union-attr]
    paths = [r.pulsegate_anomaly["path"] for r in caplog.records  # type: ignore[attr-defined]
             if r.name == ANOMALY_LOGGER]
    assert paths and paths[-1] == f"/work/{secret}"


async def test_incident_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    gate = make_gate(clock, log_events=True, aggregation_window=1)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    # steady windows, then a sustained shift over several windows
    await run(app, [f"/work/{i}?ms={100 + i % 7}" for i in range(200)])
    await run(app, ["/work/x?ms=900"] * 12)
    assert gate.counters["incidents"] >= 1
    with caplog.at_level(logging.WARNING, logger=ANOMALY_LOGGER):
        state(gate).logs.flush()  # type: ignore[union-attr]
    incidents = [r for r in caplog.records if hasattr(r, "pulsegate_incident")]
    assert len(incidents) == gate.counters["incidents"]
    fields = incidents[0].pulsegate_incident  # type: ignore[attr-defined]
    assert fields["window_mean_ms"] > 300
    # the fields of gate.incidents(): magnitude and the evidence behind the verdict
    first = gate.incidents()[0]
    assert fields["ratio"] == first.ratio > 2 and fields["start"] == first.start
    assert fields["requests"] == first.requests >= 2 and fields["windows"] == first.windows >= 2
    assert f"{first.ratio:.1f}x" in incidents[0].getMessage()


def test_queue_is_bounded(clock: FakeClock) -> None:
    gate = make_gate(clock, log_events=True, max_recent=3)
    logs = state(gate).logs
    assert logs is not None
    for i in range(10):
        logs._push("anomaly", {"endpoint": "GET /", "pulsegate_anomaly": {
            "duration_ms": float(i), "predicted_ms": 1.0, "score": 1.0}})
    assert len(logs.queue) == 3 and logs.dropped == 7


def test_off_switch(clock: FakeClock) -> None:
    gate = make_gate(clock, log_events=False)
    assert state(gate).logs is None and "pulsegate.export.logs" not in gate.scheduler.jobs


def test_detection_extra_matches_the_query_loggers_shape() -> None:
    class Det:
        kind = "n_plus_one"
        fingerprint = "abc"
        sql = "select * from book where author_id = ?"
        count = 7
        total_ms = 1.5
        call_site = "app.py:3 in view"
        relationship = "Author.books"
        suggestion = "selectinload(Author.books)"
        confidence = 0.9

    extra = detection_extra(Det(), "GET /authors")
    assert extra["endpoint"] == "GET /authors"
    assert extra["pulsegate_detection"]["sql"] == Det.sql
    assert extra["pulsegate_detection"]["suggestion"] == "selectinload(Author.books)"
