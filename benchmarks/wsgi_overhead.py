"""Per-request cost of pulsegate on WSGI (a Flask app, and a bare WSGI callable),
against the bare app and against OpenTelemetry's WSGI middleware, in one run. The Flask
app is also measured with OpenTelemetry's Flask instrumentation (``FlaskInstrumentor``:
the WSGI middleware plus its request hooks), which is what a Flask user installs and the
like of what ``django_overhead.py`` measures for Django.

Each call is a full WSGI cycle in-process (no server, no network): ``app(environ,
start_response)``, iterate the body, ``close()``. The stacks alternate round by round, in
many short rounds; what a stack adds is the median over rounds of its difference from
the bare stack of the same round (drift on a shared machine cancels in it).
The bare callable is also measured "cold": each call after a Flask request, so the
middleware does not find its own code and data still hot from the call before; and
after 8 MB of plain memory traffic, which evicts the same cache lines without running
any other code.

    .venv/bin/python benchmarks/wsgi_overhead.py [--requests 300] [--rounds 50] [--cpu-clock]

Budget (issue 19): on Flask, pulsegate adds at most 10 % of what OpenTelemetry's Flask
instrumentation adds (``FlaskInstrumentor``, what a Flask user installs); the shares of
OpenTelemetry's bare WSGI middleware are printed for information.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable, Iterable
from typing import Any

import _common
from _common import discarding_tracer_provider, engine_only, freeze_setup, paired_added, start_response
from flask import Flask
from werkzeug.test import create_environ

from pulsegate.engine import PulseGate
from pulsegate.flask import PulseGate as FlaskPulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def flask_app() -> Flask:
    app = Flask("bench")

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return "hello"

    return app


def raw_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def otel(app: WSGIApp) -> WSGIApp:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, tracer_provider=discarding_tracer_provider())  # type: ignore[no-any-return]


def otel_flask() -> WSGIApp:
    """The Flask app under ``FlaskInstrumentor().instrument_app``."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = flask_app()
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=discarding_tracer_provider())
    return app.wsgi_app


def stacks() -> dict[str, WSGIApp]:
    out: dict[str, WSGIApp] = {"flask bare": flask_app().wsgi_app}
    app = flask_app()
    FlaskPulseGate(app)
    out["flask + pulsegate (extension)"] = app.wsgi_app
    app = flask_app()
    FlaskPulseGate(app, headers="none")
    out["flask + pulsegate, headers=none"] = app.wsgi_app
    app = flask_app()
    FlaskPulseGate(app, measure_memory=False)
    out["flask + pulsegate, measure_memory=false"] = app.wsgi_app
    out["flask + opentelemetry wsgi"] = otel(flask_app().wsgi_app)
    out["flask + opentelemetry flask"] = otel_flask()
    out["raw wsgi bare"] = raw_app
    out["raw wsgi + pulsegate"] = PulseGateWSGIMiddleware(raw_app, gate=PulseGate())
    out["raw wsgi + opentelemetry wsgi"] = otel(raw_app)
    # The same three, each call after a bare Flask request (in the baseline as well, so
    # it cancels out): the middleware then runs with caches and branch predictors
    # holding another app's work, as between a real server's requests, instead of its
    # own from the call before.
    for name in ("raw wsgi bare", "raw wsgi + pulsegate", "raw wsgi + opentelemetry wsgi"):
        out[name.replace("raw wsgi", COLD)] = after_flask(out[name])
    # And each call after FLUSH_MB of plain memory traffic: no other Python code, only its
    # cache lines gone. Which of the two slows a stack down tells what it pays for.
    for name in ("raw wsgi bare", "raw wsgi + pulsegate", "raw wsgi + opentelemetry wsgi"):
        out[name.replace("raw wsgi", FLUSHED)] = after_flush(out[name])
    return out


COLD = "raw wsgi, cold"
FLUSH_MB = 8
FLUSHED = f"raw wsgi, {FLUSH_MB} MB flushed"


def after_flush(app: WSGIApp) -> WSGIApp:
    buffer = bytearray(FLUSH_MB << 20)

    def call(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        buffer[::64] = buffer[1::64]  # reads and writes one byte of every cache line
        return app(environ, start_response)

    return call


def after_flask(app: WSGIApp) -> WSGIApp:
    other = flask_app().wsgi_app

    def call(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        serve(other, dict(environ))
        return app(environ, start_response)

    return call


def serve(app: WSGIApp, environ: dict[str, Any]) -> None:
    """One request as a server makes it: call, iterate the body, close it."""
    result = app(environ, start_response)
    for _ in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def run(app: WSGIApp, environs: list[dict[str, Any]]) -> float:
    for env in environs[:200]:  # warm caches and the endpoint model
        serve(app, dict(env))
    t0 = _common.timer()
    for env in environs:
        serve(app, dict(env))
    return (_common.timer() - t0) / len(environs) * 1e6


def report(med: dict[str, float], added: dict[str, float], base: str, gated: str,
           otel_name: str) -> str:
    o = added[otel_name]
    lines = [f"{'stack':36s} {'µs/req':>8s} {'added':>8s} {'vs OTel added':>14s}"]
    for name in (base, gated, otel_name):
        ratio = f"{added[name] / o * 100:6.1f} %" if name != base else ""
        lines.append(f"{name:36s} {med[name]:8.1f} {added[name]:+8.1f} {ratio:>14s}")
    pg = added[gated]
    verdict = "within" if pg <= 0.10 * o else "OVER"
    lines.append(f"budget: pulsegate adds {pg:.1f} µs = {pg / o * 100:.1f} % of OTel's {o:.1f} µs "
                 f"({verdict} the 10 % budget)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="per stack and round")
    ap.add_argument("--rounds", type=int, default=50)
    _common.add_clock_option(ap)
    args = ap.parse_args()
    _common.use_cpu_clock(args.cpu_clock)
    # The log exporter reports anomalies; a noisy benchmark machine makes many, and
    # terminal writes are not what is measured here.
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    apps = stacks()
    environs = [create_environ(f"/hello/u{i % 50}", "http://localhost/",
                               headers={"User-Agent": "bench"}) for i in range(args.requests)]
    for env in environs:
        env["REMOTE_ADDR"] = "127.0.0.1"
    freeze_setup()
    results: dict[str, list[float]] = {name: [] for name in apps}
    core: list[float] = []
    for _ in range(args.rounds):
        for name, app in apps.items():
            results[name].append(run(app, environs))
        core.append(engine_only(args.requests))
    med = {name: statistics.median(v) for name, v in results.items()}

    def family(prefix: str) -> dict[str, float]:
        """What each stack named ``prefix ...`` adds to ``prefix bare``, paired by round."""
        return paired_added({k: v for k, v in results.items() if k.startswith(prefix + " ")},
                            f"{prefix} bare")

    flask, raw, cold, flushed = (family(p) for p in ("flask", "raw wsgi", COLD, FLUSHED))
    print(f"{args.requests} requests x {args.rounds} rounds, in-process: median µs/request, "
          "and the median of each round's difference from the bare stack")
    print(report(med, flask, "flask bare", "flask + pulsegate (extension)",
                 "flask + opentelemetry flask"))
    for variant in ("flask + pulsegate, headers=none", "flask + pulsegate, measure_memory=false"):
        print(f"{variant:36s} {med[variant]:8.1f} {flask[variant]:+8.1f}")
    middleware = flask["flask + opentelemetry wsgi"]
    print(f"{'flask + opentelemetry wsgi':36s} {med['flask + opentelemetry wsgi']:8.1f} "
          f"{middleware:+8.1f}   pulsegate adds "
          f"{flask['flask + pulsegate (extension)'] / middleware * 100:.1f} % of it "
          "(for information)")
    print()
    print("for information, a bare WSGI callable against OpenTelemetry's WSGI middleware:")
    print(report(med, raw, "raw wsgi bare", "raw wsgi + pulsegate", "raw wsgi + opentelemetry wsgi"))
    print(f"of which the engine core alone (begin + response_headers + finish): "
          f"{statistics.median(core):.1f} µs")
    print()
    print("the same, each call after a Flask request (caches and predictors cold):")
    print(report(med, cold, f"{COLD} bare", f"{COLD} + pulsegate", f"{COLD} + opentelemetry wsgi"))
    print()
    print(f"the same, each call after {FLUSH_MB} MB of memory traffic (no other code runs):")
    print(report(med, flushed, f"{FLUSHED} bare", f"{FLUSHED} + pulsegate",
                 f"{FLUSHED} + opentelemetry wsgi"))


if __name__ == "__main__":
    main()
