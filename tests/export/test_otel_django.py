"""OpenTelemetry export under OTel's Django instrumentation (its middleware outermost,
pulsegate's inside): the figures land on Django's server span, once, with no extra span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:  # alone; otherwise whoever configured Django first holds
    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="pulsegate-tests",
                       ROOT_URLCONF="otel_django_urls", MIDDLEWARE=[],
                       INSTALLED_APPS=["django.contrib.contenttypes"],
                       DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                              "NAME": ":memory:"}},
                       USE_TZ=True, LOGGING_CONFIG=None)
    django.setup()

from django.test import Client, override_settings
from opentelemetry import trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from pulsegate.django.gate import set_gate
from pulsegate.engine import PulseGate
from pulsegate.export import otel
from pulsegate.export.otel import DETECTION_EVENT

pytestmark = pytest.mark.pulsegate(nplusone="off")


@pytest.fixture()
def instrumented() -> Iterator[tuple[InMemorySpanExporter, PulseGate]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    gate = PulseGate(warmup=3, log_events=False, measure_cpu=False)
    otel.install(gate, meter_provider=MeterProvider())
    with override_settings(ROOT_URLCONF="otel_django_urls",
                           MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"]):
        set_gate(gate)
        instrumentor = DjangoInstrumentor()
        instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
        try:
            assert settings.MIDDLEWARE[0].startswith("opentelemetry.")  # outermost
            yield spans, gate
        finally:
            instrumentor.uninstrument()
            set_gate(None)


def test_django_server_span(instrumented: tuple[InMemorySpanExporter, Any]) -> None:
    spans, gate = instrumented
    client = Client()
    for i in range(5):
        assert client.get(f"/books/{i}/").status_code == 200
    r = client.get("/books/9/?n1=1")
    server = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert len(server) == len(spans.get_finished_spans()) == 6  # no span of ours
    attrs = server[-1].attributes or {}
    assert attrs["pulsegate.query_count"] == 6
    # set at response start from the header score, then at the end from the full
    # duration: both are this request's, in [0, 1]
    assert 0.0 <= attrs["pulsegate.anomaly_score"] <= 1.0
    assert 0.0 <= float(r["x-ml-anomaly-score"]) <= 1.0
    assert 0 < attrs["pulsegate.confidence"] <= 100
    events = [e for e in server[-1].events if e.name == DETECTION_EVENT]
    assert len(events) == 1
    assert "?" in str((events[0].attributes or {})["db.query.text"])
    assert gate.faults.total == 0
