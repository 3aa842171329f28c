"""Caches and upstreams reach Prometheus, OpenTelemetry, the dashboard's JSON and
``pulsegate report`` -- with patterns and upstream labels only, never a raw key or a
query string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import pulsegate.caches
import pulsegate.outbound
from pulsegate.cli import main as cli_main
from pulsegate.engine import PulseGate
from pulsegate.export.dashboard.api import summary
from pulsegate.export.io import register_otel
from pulsegate.export.series import SeriesStore
from pulsegate.outbound.hooks import uninstrument


def fill(gate: PulseGate) -> None:
    caches = pulsegate.caches.attach(gate)
    caches.write("default", "user:4242:profile", 60.0, size=10)
    caches.read("default", "user:4242:profile", True, size=10)
    caches.read("default", "user:77:profile", False)
    outbound = pulsegate.outbound.attach(gate)
    outbound.call("https://api.example.com", "/v1/users/{id}", 0.02, 200, "success")
    outbound.call("https://api.example.com", "/v1/users/{id}", 0.5, None, "timeout")


def test_prometheus(tmp_path: Path) -> None:
    gate = PulseGate(prometheus=True, prometheus_path=None)
    try:
        fill(gate)
        text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
        assert ('pulsegate_cache_operations_total{cache="default",pattern="user:{id}:profile",'
                'result="hit"} 1.0') in text
        assert ('pulsegate_upstream_calls_total{outcome="timeout",'
                'upstream="https://api.example.com"} 1.0') in text
        assert "pulsegate_upstream_health" in text
        assert "4242" not in text
    finally:
        gate.close()


def test_opentelemetry() -> None:
    gate = PulseGate()
    try:
        fill(gate)
        reader = InMemoryMetricReader()
        register_otel(gate, MeterProvider(metric_readers=[reader]))
        data = reader.get_metrics_data()
        assert data is not None
        points: dict[str, list[Any]] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points[metric.name] = list(metric.data.data_points)
        ops = {(p.attributes["pattern"], p.attributes["result"]): p.value
               for p in points["pulsegate.cache.operations"]}
        assert ops[("user:{id}:profile", "hit")] == 1 and ops[("user:{id}:profile", "miss")] == 1
        calls = {p.attributes["outcome"]: p.value for p in points["pulsegate.upstream.calls"]}
        assert calls == {"success": 1, "timeout": 1}
        assert 0 < points["pulsegate.upstream.health"][0].value < 1
    finally:
        gate.close()


def test_dashboard_summary() -> None:
    gate = PulseGate()
    try:
        fill(gate)
        io = summary(gate, SeriesStore(gate))["reports"]
        assert io["caches"]["patterns"][0]["pattern"] == "user:{id}:profile"
        assert io["outbound"]["upstreams"][0]["upstream"] == "https://api.example.com"
        assert "4242" not in json.dumps(io)
    finally:
        gate.close()


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = PulseGate(state_dir=str(tmp_path))
    try:
        fill(gate)
    finally:
        gate.close()   # the last snapshot holds both components
    uninstrument()
    assert cli_main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cache_patterns"][0]["pattern"] == "user:{id}:profile"
    assert out["upstreams"][0]["timeouts"] == 1
    assert cli_main(["report", "--state-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "caches by key pattern" in text and "upstreams (outbound HTTP calls)" in text
