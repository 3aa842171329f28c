"""The dashboard's bounded memory, driven with hand-made records."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from exportkit import FakeClock, make_gate

from pulsegate.export.series import SeriesStore
from pulsegate.records import RequestRecord


def rec(route: str, at: float, ms: float, predicted: float | None = 10.0, *,
        status: int = 200, optimization: str = "none", client: str | None = None,
        detections: int = 0) -> RequestRecord:
    return RequestRecord("GET", route, route, status, at, ms, ms, 0.0, None, client=client,
                         predicted_ms=predicted, optimization=optimization,
                         detections=detections)


def ctx(dets: list[Any] | None = None) -> Any:
    return SimpleNamespace(endpoint=None, detections=dets or [])


def store(clock: FakeClock, **options: Any) -> SeriesStore:
    gate = make_gate(clock, **options)
    return SeriesStore(gate, points=options.pop("points", 4) if "points" in options else 4)


def test_endpoints_are_lru_capped(clock: FakeClock) -> None:
    s = store(clock, max_endpoints=3)
    for i in range(10):
        s(rec(f"/r{i}", 100.0, 5.0), ctx())
    assert s.endpoints() == ["GET /r7", "GET /r8", "GET /r9"]
    s(rec("/r7", 100.0, 5.0), ctx())
    s(rec("/r10", 100.0, 5.0), ctx())
    assert s.endpoints() == ["GET /r9", "GET /r7", "GET /r10"]


def test_buckets_aligned_and_ring_buffered(clock: FakeClock) -> None:
    s = store(clock, aggregation_window=10)
    for t in range(0, 100, 5):  # two requests per 10 s window, ten windows
        s(rec("/a", 1000.0 + t, float(t)), ctx())
    pts = s.endpoint_series("GET /a")
    assert [p["t"] for p in pts] == [1060.0, 1070.0, 1080.0, 1090.0]
    assert [p["n"] for p in pts] == [2, 2, 2, 2]
    assert pts[-1]["mean_ms"] == pytest.approx(92.5) and pts[-1]["max_ms"] == 95.0


def test_band_is_the_models_band(clock: FakeClock) -> None:
    gate = make_gate(clock, z_threshold=3.0)
    s = SeriesStore(gate, points=4)
    model = gate.baselines.get("GET /a")
    model.n, model.level[0], model.var[0] = 50, math.log(10.0), 0.2 ** 2
    s(rec("/a", 100.0, 12.0, predicted=10.0), ctx())
    p = s.endpoint_series("GET /a")[0]
    assert p["forecast_ms"] == pytest.approx(10.0)
    assert p["low_ms"] == pytest.approx(10.0 * math.exp(-0.6))
    assert p["high_ms"] == pytest.approx(10.0 * math.exp(0.6))


def test_detections_deduplicated_and_throttled_clients(clock: FakeClock) -> None:
    s = store(clock)
    det = SimpleNamespace(kind="n_plus_one", fingerprint="f1", sql="select ?", count=6,
                          total_ms=1.0, call_site="a.py:1", relationship=None,
                          suggestion="prefetch_related('x')", confidence=0.9)
    for i in range(5):
        s(rec("/a", 100.0 + i, 5.0, detections=1), ctx([det]))
    rows = s.recent_detections()
    assert len(rows) == 1 and rows[0]["seen"] == 5 and rows[0]["first_at"] == 100.0
    for client in ("c1", "c2", "c1"):
        s(rec("/a", 200.0, 1.0, status=429, optimization="throttle", client=client), ctx())
    assert s.top_throttled() == [{"client": "c1", "throttled": 2}, {"client": "c2", "throttled": 1}]
    assert sum(b["throttled"] for b in s.control_series()) == 3
