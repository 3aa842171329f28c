"""Issue 18: no SQL literal leaves the process through any exported channel.

One app behind pulsegate (OpenTelemetry's ASGI middleware outermost, Prometheus, logs,
the dashboard, persisted SQLite state) runs, in one request, every literal form of
every dialect of the corpus fuzz (tests/queries/test_sql_corpus_fuzz.py) six times over
-- the same text and parameters, so each becomes a ``repeated_query`` detection whose
fingerprint is exported -- each event stamped with its dialect as the ORM hooks stamp
it, plus a real SQLAlchemy SQLite engine running a double-quoted string literal. Then
every channel is read back and searched for every planted secret: response headers,
log records (message and structured extras), OpenTelemetry spans and events,
Prometheus exposition, dashboard API, ``pulsegate report --json``, ``capture().report()``
and the bytes of the persisted state files. With the old tokenizer the secrets of
``$$…$$``, nested comments, ``#`` comments, backslash-ended and double-quoted literals
reached all of them."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_sql_corpus_fuzz import FORMS

from pulsegate import capture
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.cli import main as cli_main
from pulsegate.context import query_sink
from pulsegate.engine import PulseGate
from pulsegate.export import otel, prometheus, state
from pulsegate.queries.events import QueryEvent
from pulsegate.sqlalchemy import instrument, uninstrument

pytestmark = pytest.mark.pulsegate(nplusone="off")  # N+1s on purpose
TOKEN = "dash-token-0123456789"
SOUP = "'\\\"$#*/-- [ ]\\"  # and a plain " " around the secret


def planted() -> list[tuple[str, str, str]]:
    """``(dialect, statement, secret)`` for every literal form of every dialect."""
    cases = []
    for dialect, forms in FORMS.items():
        for (k, (name, write, clean, _)), soup in itertools.product(enumerate(forms), (" ", SOUP)):
            secret = f"Zq{dialect[:3]}{k}Leak{len(soup)}x"
            literal = write(clean(soup) + secret + clean(soup[::-1]))
            if name == "number":
                secret = literal
            elif name == "blob":
                secret = secret.encode().hex()
            table = f"t{len(cases)}"  # one shape per case: each its own detection
            cases.append((dialect, f"SELECT a, b FROM {table} WHERE c = {literal} AND d = 1", secret))
    return cases


CASES = planted()
SQLITE_SECRET = "ZqSqliteEngineLeak"


def add_events(sink: Any) -> None:
    for i, (dialect, sql, _) in enumerate(CASES):
        for _ in range(6):
            sink.add_query(QueryEvent(sql, 0.4, 0.0, params_count=0, params_hash=7,
                                      call_site=f"app/views.py:{i} in page", db=dialect,
                                      orm="sqlalchemy"))


def build(gate: PulseGate, tracer_provider: TracerProvider) -> Any:
    engine = create_engine("sqlite://")
    instrument(engine)

    async def page(request: Request) -> PlainTextResponse:
        sink = query_sink.get()
        assert sink is not None
        add_events(sink)
        with engine.connect() as conn:  # SQLite reads an unknown "name" as a string
            for _ in range(6):
                conn.execute(text(f'SELECT 1 WHERE "{SQLITE_SECRET}" = \'x\'')).all()
        return PlainTextResponse("ok")

    app = PulseGateMiddleware(Starlette(routes=[Route("/page", page)]), gate=gate)
    return OpenTelemetryMiddleware(app, tracer_provider=tracer_provider,
                                   meter_provider=MeterProvider()), engine


def secrets() -> list[str]:
    return [s for _, _, s in CASES] + [SQLITE_SECRET]


def assert_clean(channel: str, blob: str) -> None:
    low = blob.lower()
    leaked = [s for s in secrets() if s.lower() in low]
    assert not leaked, (channel, leaked)


async def test_no_planted_secret_reaches_any_exported_channel(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="pulsegate")
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    gate = PulseGate(state_dir=str(tmp_path), dashboard=True, dashboard_token=TOKEN,
                     log_events=True, query_log_interval=0, measure_cpu=False)
    otel.install(gate, meter_provider=MeterProvider())
    exporter = prometheus.install(gate, CollectorRegistry())
    state(gate).prometheus = exporter
    app, engine = build(gate, tracer_provider)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            responses = [await client.get("/page") for _ in range(3)]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            summary = await client.get("/_pulsegate/api/summary", headers=auth)
            series = await client.get("/_pulsegate/api/series", headers=auth)
        with capture(install_hooks=False) as cap:
            add_events(query_sink.get())
        gate.ops.snapshot()
    finally:
        uninstrument(engine)
        gate.close()

    # The planted statements were seen and detected: the channels had something to leak.
    assert summary.status_code == 200 and series.status_code == 200
    assert len(cap.detections) == len(CASES)
    kinds = {d["kind"] for d in gate.detections}
    assert kinds == {"repeated_query"} and len(gate.query_insights()) == len(CASES) + 1

    assert_clean("headers", json.dumps([list(r.headers.items()) for r in responses]))
    assert_clean("logs", "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records))
    events = [(s.name, dict(s.attributes or {}), [(e.name, dict(e.attributes or {}))
                                                 for e in s.events])
              for s in spans.get_finished_spans()]
    assert any(e for _, _, e in events), "no detection event on the server span"
    assert_clean("opentelemetry", repr(events))
    assert_clean("prometheus", exporter.render()[1].decode())
    assert_clean("dashboard api", summary.text + series.text)
    assert_clean("capture().report()", cap.report())
    capsys.readouterr()
    assert cli_main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    report = capsys.readouterr().out
    assert json.loads(report) and "select" in report
    assert_clean("cli --json", report)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    assert_clean("persisted state", "".join(p.read_bytes().decode("latin-1") for p in files))
