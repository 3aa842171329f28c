"""Prometheus export: the metric objects in a registry, the exposition served by the
middleware at ``prometheus_path``, and several gates sharing one registry."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from exportkit import FakeClock, build_app, make_gate
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.export import prometheus, state

pytestmark = pytest.mark.pulsegate(nplusone="off")

WARM = [f"/work/{i}?ms={10 + i % 3}" for i in range(20)]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def run(app: Any, paths: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        return [await client.get(p) for p in paths]


async def test_metrics_in_a_registry(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    gate = make_gate(clock, resource_allocation=True)
    exporter = prometheus.install(gate, registry)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    await run(app, [*WARM, "/work/slow?ms=400", "/work/n1?ms=10&n1=8"])
    ctype, body = exporter.render()
    assert ctype.startswith("text/plain")
    s = samples(body.decode())
    route = (("method", "GET"), ("route", "/work/{item}"))
    assert s[("pulsegate_anomaly_score_count", route)] == 22
    assert s[("pulsegate_anomaly_score_bucket", (("le", "+Inf"), *route))] == 22
    assert s[("pulsegate_anomalies_total", route)] == gate.counters["anomalies"] >= 1
    assert s[("pulsegate_detections_total", (("kind", "n_plus_one"), *route))] == 1
    assert s[("pulsegate_allocator_limit", ())] == gate.control.allocator.limit
    assert s[("pulsegate_allocator_in_flight", ())] == 0


async def test_served_by_the_middleware(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    gate = make_gate(clock, rate_limiting=True, rate_limit="3/minute")
    state(gate).prometheus = prometheus.install(gate, registry)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    responses = await run(app, [f"/work/{i}?ms=5" for i in range(6)])
    refused = sum(r.status_code == 429 for r in responses)
    assert refused >= 1
    (metrics,) = await run(app, ["/_pulsegate/metrics"])
    assert metrics.status_code == 200 and "x-ml-model-version" not in metrics.headers
    s = samples(metrics.text)
    # (refused before routing, these requests carry the route the limiter saw)
    assert sum(v for k, v in s.items() if k[0] == "pulsegate_throttles_total") == refused
    assert gate.counters["requests"] == 6  # the scrape is not measured


def test_config_uses_the_default_registry_and_gates_share_it(clock: FakeClock) -> None:
    from prometheus_client import REGISTRY, generate_latest

    g1 = make_gate(clock, prometheus=True)
    g2 = make_gate(clock, prometheus=True)  # no "Duplicated timeseries" error
    e1, e2 = state(g1).prometheus, state(g2).prometheus
    assert e1 is not None and e2 is not None and e1.registry is REGISTRY
    assert e1._score is e2._score
    assert b"pulsegate_anomaly_score" in generate_latest(REGISTRY)
    assert g1.faults.total == 0 and g2.faults.total == 0


async def test_path_none_is_not_served(clock: FakeClock) -> None:
    gate = make_gate(clock, prometheus=True, prometheus_path=None)
    assert state(gate).prometheus is not None
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    (r,) = await run(app, ["/_pulsegate/metrics"])
    assert r.status_code == 404 and "x-ml-model-version" in r.headers  # the app's own 404


MULTIPROC_SCRIPT = r"""
import os, sys
from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo

gate = PulseGate(prometheus=True, log_events=False)  # made before the fork, like --preload
pids = []
for worker in range(2):
    pid = os.fork()
    if pid == 0:
        for i in range(50 + worker * 25):
            ctx = gate.begin(RequestInfo("GET", f"/items/{i}", "/items/{id}"))
            gate.response_headers(ctx, 200)
            gate.finish(ctx)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    assert os.waitpid(pid, 0)[1] == 0
from pulsegate.export import state
ctype, body = state(gate).prometheus.render()
sys.stdout.write(body.decode())
"""


def test_gunicorn_style_multiprocess_mode(tmp_path: Any) -> None:
    """Two forked workers record; a scrape of either aggregates both (multiprocess mode)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", MULTIPROC_SCRIPT], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    s = samples(out)
    count = s[("pulsegate_anomaly_score_count", (("method", "GET"), ("route", "/items/{id}")))]
    assert count == 50 + 75
    assert any(name.startswith("histogram_") for name in os.listdir(tmp_path))


async def test_a_clients_paths_and_methods_never_become_label_values(clock: FakeClock) -> None:
    """Attack probe (held; not tested before): unmatched paths carrying a newline, quotes
    and backslashes (percent-decoded by the server) and invented methods. Labels are
    route templates, ``UNMATCHED`` and HTTP's methods or ``OTHER`` -- never the
    client's text -- so the exposition stays parseable and its series few."""
    registry = CollectorRegistry()
    gate = make_gate(clock)
    exporter = prometheus.install(gate, registry)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        for i in range(300):
            await client.request(("GET", f"PURGE{i}", "BREW")[i % 3],
                                 f"/x{i}%0Aevil%22%7D%20{i}%5C/" + "p" * (i * 10))
    text = exporter.render()[1].decode()
    labels = {(k, v) for (_, ls), _ in samples(text).items() for k, v in ls}
    assert {v for k, v in labels if k == "route"} == {"UNMATCHED"}
    assert {v for k, v in labels if k == "method"} == {"GET", "OTHER"}
    assert "evil" not in text and "PURGE" not in text and len(text) < 20_000
