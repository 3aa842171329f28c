"""Per-request cost of pulsegate's Django middleware, against bare Django and against
OpenTelemetry's Django instrumentation (its middleware, SDK with a discarding exporter),
in one run.

Each call is a full request through Django's own handler in-process (URL resolution,
middleware chain, view, response, ``close()``), no server and no network: the WSGI
handler, and the ASGI handler (where pulsegate's middleware runs as a coroutine). The
stacks alternate round by round, in many short rounds; what a stack adds is the median
over rounds of its difference from bare Django in the same round.

    .venv/bin/python benchmarks/django_overhead.py [--requests 300] [--rounds 40] [--cpu-clock]

Budget: pulsegate adds at most 10 % of what OpenTelemetry's instrumentation adds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
from collections.abc import Mapping
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="bench", ROOT_URLCONF=__name__,
    MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, LOGGING_CONFIG=None)
django.setup()

import _common  # noqa: E402
from _common import (  # noqa: E402
    discarding_tracer_provider,
    engine_only,
    freeze_setup,
    paired_added,
    start_response,
)
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from werkzeug.test import create_environ  # noqa: E402


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


async def ahello(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


# The ASGI runs use the async view: a sync view would put a thread hop (sync_to_async)
# into every request and drown the middleware's cost in its noise.
urlpatterns = [path("hello/<str:name>/", hello), path("ahello/<str:name>/", ahello)]


def handler(middleware: list[str], **pulsegate: Any) -> tuple[WSGIHandler, ASGIHandler]:
    from pulsegate.django.gate import set_gate

    with override_settings(MIDDLEWARE=middleware, PULSEGATE=pulsegate):
        set_gate(None)  # a fresh engine per stack
        return WSGIHandler(), ASGIHandler()


def otel_handler() -> tuple[WSGIHandler, ASGIHandler]:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    provider = discarding_tracer_provider()
    # The instrumentor inserts its middleware into settings.MIDDLEWARE; handlers built
    # before this call (the other stacks) keep their own chains.
    DjangoInstrumentor().instrument(tracer_provider=provider)
    return WSGIHandler(), ASGIHandler()


def run(app: WSGIHandler, environs: list[dict[str, Any]]) -> float:
    for env in environs[:200]:
        result = app(dict(env), start_response)
        for _ in result:
            pass
        result.close()  # type: ignore[attr-defined]
    t0 = _common.timer()
    for env in environs:
        result = app(dict(env), start_response)
        for _ in result:
            pass
        result.close()  # type: ignore[attr-defined]
    return (_common.timer() - t0) / len(environs) * 1e6


SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
         "scheme": "http", "root_path": "", "query_string": b"",
         "headers": [(b"host", b"localhost"), (b"user-agent", b"bench")],
         "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def run_asgi(app: ASGIHandler, paths: list[str]) -> float:
    never = asyncio.Event()

    def receiver() -> Any:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()  # no disconnect: Django's listener is cancelled at the end
            return {"type": "http.disconnect"}
        return receive

    async def send(message: Mapping[str, Any]) -> None:
        pass

    for p in paths[:200]:
        await app({**SCOPE, "path": p, "raw_path": p.encode()}, receiver(), send)
    t0 = _common.timer()
    for p in paths:
        await app({**SCOPE, "path": p, "raw_path": p.encode()}, receiver(), send)
    return (_common.timer() - t0) / len(paths) * 1e6


def table(title: str, results: dict[str, list[float]]) -> None:
    med = {n: statistics.median(v) for n, v in results.items()}
    added = paired_added(results, "django bare")
    otel_added = added["django + opentelemetry"]
    print(title)
    print(f"{'stack':36s} {'µs/req':>8s} {'added':>8s} {'vs OTel added':>14s}")
    for name, v in med.items():
        ratio = f"{added[name] / otel_added * 100:6.1f} %" if name != "django bare" else ""
        print(f"{name:36s} {v:8.1f} {added[name]:+8.1f} {ratio:>14s}")
    pg = added["django + pulsegate"]
    verdict = "within" if pg <= 0.10 * otel_added else "OVER"
    print(f"budget: pulsegate adds {pg:.1f} µs = {pg / otel_added * 100:.1f} % of OTel's "
          f"{otel_added:.1f} µs ({verdict} the 10 % budget)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="per stack and round")
    ap.add_argument("--rounds", type=int, default=40)
    _common.add_clock_option(ap)
    args = ap.parse_args()
    _common.use_cpu_clock(args.cpu_clock)
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    mw = ["pulsegate.django.PulseGateMiddleware"]
    apps = {
        "django bare": handler([]),
        "django + pulsegate": handler(mw),
        "django + pulsegate, headers=none": handler(mw, headers="none"),
    }
    apps["django + opentelemetry"] = otel_handler()
    environs = [create_environ(f"/hello/u{i % 50}/", "http://localhost/",
                               headers={"User-Agent": "bench"}) for i in range(args.requests)]
    for env in environs:
        env["REMOTE_ADDR"] = "127.0.0.1"
    freeze_setup()
    paths = [f"/ahello/u{i % 50}/" for i in range(args.requests)]
    wsgi: dict[str, list[float]] = {name: [] for name in apps}
    asgi: dict[str, list[float]] = {name: [] for name in apps}
    core: list[float] = []
    loop = asyncio.new_event_loop()
    for _ in range(args.rounds):
        for name, (w, a) in apps.items():
            wsgi[name].append(run(w, environs))
            asgi[name].append(loop.run_until_complete(run_asgi(a, paths)))
        core.append(engine_only(args.requests))
    print(f"{args.requests} requests x {args.rounds} rounds, in-process: median µs/request, "
          "and the median of each round's difference from bare Django "
          f"(Django {django.get_version()}, Python {sys.version.split()[0]})")
    table("WSGI handler", wsgi)
    table("\nASGI handler, async view (pulsegate's middleware runs as a coroutine)", asgi)
    print("(ASGI: Django's handler itself hops to a thread for its request signals and "
          "response.close(), so its run-to-run noise is ~±200 µs; read this table for thread "
          "hops added by a middleware, not for microseconds.)")
    print(f"\nthe engine core alone (begin + response_headers + finish): "
          f"{statistics.median(core):.1f} µs")

if __name__ == "__main__":
    main()
