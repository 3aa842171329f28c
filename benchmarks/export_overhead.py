"""Per-request cost of pulsegate's export parts (dashboard series, Prometheus, OTel
span attributes and metrics), each against plain pulsegate, measured in one run.

Uses the harness of ``asgi_overhead.py`` (one-route Starlette app called in-process,
stacks alternating round by round, median of the rounds).

    .venv/bin/python benchmarks/export_overhead.py [--requests 10000] [--rounds 5] [--micro-only]

It first times each export hook alone on one finished request (``timeit``, best of 7
repeats: robust on a loaded machine), next to one bare OTel SDK ``Histogram.record``,
then runs the full stacks.

The OTel rows run under OpenTelemetry's own ASGI middleware (SDK tracer, batch
processor, discarding exporter), so pulsegate's exporter has a server span to decorate;
their baseline is that middleware in front of plain pulsegate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import discarding_tracer_provider
from asgi_overhead import bare, run
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate
from pulsegate.export import otel, prometheus


def stack(*, dashboard: bool = False, prom: bool = False, otel_export: bool = False,
          otel_mw: bool = False) -> Callable[[], Any]:
    def build() -> Any:
        opts: dict[str, Any] = {"log_events": False}
        if dashboard:
            opts.update(dashboard=True, dashboard_token="bench")
        gate = PulseGate(**opts)
        if prom:
            prometheus.install(gate, CollectorRegistry())
        if otel_export:
            otel.install(gate, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
        app: Any = PulseGateMiddleware(bare(), gate=gate)
        if otel_mw:
            app = OpenTelemetryMiddleware(app, tracer_provider=discarding_tracer_provider(),
                                          meter_provider=MeterProvider())
        return app
    return build


def micro(n: int = 20_000) -> None:
    import timeit

    from pulsegate.export import state
    from pulsegate.records import RequestInfo

    gate = PulseGate(log_events=False, dashboard=True, dashboard_token="bench")
    series = state(gate).series
    assert series is not None
    exporter = otel.install(gate, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))
    prom = prometheus.install(gate, CollectorRegistry())
    ctx = gate.begin(RequestInfo("GET", "/a", "/a"))
    assert ctx is not None
    gate.response_headers(ctx, 200)
    record = gate.finish(ctx)
    assert record is not None
    tracer = TracerProvider().get_tracer("bench")
    attrs = {"http.route": "/a", "http.request.method": "GET"}

    def best(fn: Callable[[], object]) -> float:
        return min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6

    def start() -> None:
        exporter.on_response_start(ctx, 200)
        exporter._pending.clear()

    def finish() -> None:
        exporter.on_finish(record, ctx)
        if len(exporter._queue) > 1000:
            exporter._queue.clear()  # the scheduler's flush is timed separately

    rows = []
    with tracer.start_as_current_span("server"):
        rows.append(("otel: span attributes at response start", best(start)))
    rows.append(("otel: end of request (span ended, queue)", best(finish)))
    rows.append(("dashboard series listener", best(lambda: series(record, ctx))))
    rows.append(("prometheus listener", best(lambda: prom(record, ctx))))
    h = exporter.score
    rows.append(("reference: one OTel SDK Histogram.record", best(lambda: h.record(0.1, attrs))))
    print(f"per-hook cost on one request, best of 7 x {n}, µs")
    for name, us in rows:
        print(f"  {name:44s} {us:6.2f}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--micro-only", action="store_true")
    args = ap.parse_args()
    micro()
    if args.micro_only:
        return
    stacks: dict[str, Callable[[], Any]] = {
        "bare starlette": bare,
        "pulsegate": stack(),
        "pulsegate + dashboard series": stack(dashboard=True),
        "pulsegate + prometheus": stack(prom=True),
        "pulsegate + otel metrics (no span)": stack(otel_export=True),
        "otel asgi + pulsegate": stack(otel_mw=True),
        "otel asgi + pulsegate + otel export": stack(otel_mw=True, otel_export=True),
    }
    apps = {name: build() for name, build in stacks.items()}
    results: dict[str, list[float]] = {name: [] for name in stacks}
    loop = asyncio.new_event_loop()
    for _ in range(args.rounds):
        for name, app in apps.items():
            results[name].append(loop.run_until_complete(run(app, args.requests)))
    med = {name: statistics.median(v) for name, v in results.items()}
    base = {"pulsegate + dashboard series": "pulsegate", "pulsegate + prometheus": "pulsegate",
            "pulsegate + otel metrics (no span)": "pulsegate",
            "otel asgi + pulsegate + otel export": "otel asgi + pulsegate"}
    print(f"{args.requests} requests x {args.rounds} rounds, median µs/request")
    print(f"{'stack':40s} {'µs/req':>8s} {'export adds':>12s} {'ratio':>7s}")
    for name, v in med.items():
        ref = base.get(name)
        extra = f"{v - med[ref]:+12.2f} {v / med[ref]:7.3f}" if ref else ""
        print(f"{name:40s} {v:8.1f} {extra}")


if __name__ == "__main__":
    main()
