"""Per-request cost of pulsegate's ASGI middleware, against a bare app and against
OpenTelemetry's ASGI middleware, measured in one run.

A one-route Starlette app is called in-process (no network, no server): each call is a
full ASGI cycle (scope, receive, send of start + body). The stacks alternate round by
round, in many short rounds; what a stack adds is the median over rounds of its
difference from the bare app in the same round (drift on a shared machine cancels in it).

    .venv/bin/python benchmarks/asgi_overhead.py [--requests 500] [--rounds 40]

Budget: pulsegate adds at most 10 % of what OpenTelemetry's middleware adds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import discarding_tracer_provider, paired_added
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


def bare() -> Any:
    return Starlette(routes=[Route("/hello/{name}", hello)])


def with_pulsegate(**options: Any) -> Callable[[], Any]:
    def build() -> Any:
        app = bare()
        app.add_middleware(PulseGateMiddleware, gate=PulseGate(**options))
        return app
    return build


def with_otel() -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app = bare()
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=discarding_tracer_provider())
    return app


SCOPE_BASE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "root_path": "", "query_string": b"",
    "headers": [(b"host", b"testserver"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
}


async def run(app: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    paths = [f"/hello/u{i % 50}" for i in range(n)]
    for p in paths[:200]:  # warm caches and the endpoint model
        await app({**SCOPE_BASE, "path": p, "raw_path": p.encode()}, receive, send)
    t0 = time.perf_counter()
    for p in paths:
        await app({**SCOPE_BASE, "path": p, "raw_path": p.encode()}, receive, send)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500, help="per stack and round")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    stacks: dict[str, Callable[[], Any]] = {
        "bare starlette": bare,
        "pulsegate (measure+score+headers)": with_pulsegate(),
        "pulsegate, headers=none": with_pulsegate(headers="none"),
        # The whole pipeline: a limit no client reaches, and the allocator admitting all.
        "pulsegate + rate limit + allocator": with_pulsegate(
            rate_limiting=True, rate_limit="1000000/second", resource_allocation=True),
        "opentelemetry asgi": with_otel,
    }
    apps = {name: build() for name, build in stacks.items()}
    results: dict[str, list[float]] = {name: [] for name in stacks}
    loop = asyncio.new_event_loop()
    for _ in range(args.rounds):
        for name, app in apps.items():
            results[name].append(loop.run_until_complete(run(app, args.requests)))
    med = {name: statistics.median(v) for name, v in results.items()}
    added = paired_added(results, "bare starlette")
    otel_added = added["opentelemetry asgi"]
    print(f"{args.requests} requests x {args.rounds} rounds: median µs/request, and the "
          "median of each round's difference from the bare app")
    print(f"{'stack':40s} {'µs/req':>8s} {'added':>8s} {'vs OTel added':>14s}")
    for name, v in med.items():
        ratio = f"{added[name] / otel_added * 100:6.1f} %" if name != "bare starlette" else ""
        print(f"{name:40s} {v:8.1f} {added[name]:+8.1f} {ratio:>14s}")
    pg = added["pulsegate (measure+score+headers)"]
    verdict = "within" if pg <= 0.10 * otel_added else "OVER"
    print(f"budget: pulsegate adds {pg:.1f} µs = {pg / otel_added * 100:.1f} % of OTel's "
          f"{otel_added:.1f} µs ({verdict} the 10 % budget)")


if __name__ == "__main__":
    main()
