"""Garbage configuration values and the property every entry point must keep: each is
refused with a short ``ConfigError`` naming the key, or accepted and served by an
engine without an internal fault. Shared by the core, Django and Flask tests."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from pulsegate import Config, ConfigError, PulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
HUGE = "9" * 100_000
GARBAGE: list[Any] = [
    math.nan, math.inf, -math.inf, 1e308, -1e308, -1, -0.5, 10**400, 1j,
    "nan", "inf", "-inf", "1e308", "-1", "9" * 400, HUGE, "x" * 100_000, "\x00",
    "1" * 400 + "/minute", "5 per " + "9" * 400 + " seconds", "1/minute;inf",
    "garbage", "redis://", "http://", object(), b"bytes", [math.inf], [HUGE], ["x"] * 20_000,
    {"/a": math.inf}, {"/a": "1" * 400 + "/second"}, {"/a": "5/minute;1e308"}, {"/a": HUGE},
    {"/a": math.nan}, (math.inf, 0.9, 0.05), (0.5, 0.9, 1e-300), "0.5, 0.9, 1e-300",
    {"/" + "a" * 4000: "1/second"}, {HUGE: 1},
]
#: What an environment variable can carry: the string garbage, and a string of each other.
ENV_GARBAGE = sorted({g if isinstance(g, str) else str(g) for g in GARBAGE})
MAX_MESSAGE = 400


def documented_options() -> list[str]:
    """Option names from the tables of docs/configuration.md (first column)."""
    return list(dict.fromkeys(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", DOC.read_text(), re.M)))


def documented_allowed() -> dict[str, str]:
    """option -> its text in the doc's "Allowed values" table."""
    section = DOC.read_text().split("## Allowed values", 1)[-1].split("\n## ", 1)[0]
    return {name: text.strip().replace("\\|", "|") for name, text in
            re.findall(r"^\|\s*`([a-z_]+)`\s*\|(.*)\|\s*$", section, re.M)}


FREE_FORM = {"extra"}  # documented as "not validated"


def refused_or_served(key: str, build: Any, value: Any) -> None:
    """``build()`` raises a short ConfigError for ``key``, or the config it returns runs
    an engine (with rate limiting and admission control on) without an internal fault."""
    try:
        config = build()
    except ConfigError as exc:
        message = str(exc)
        assert exc.key.upper().endswith(key.upper()) or exc.key.startswith(key), message
        assert len(message) <= MAX_MESSAGE, (key, len(message))
        assert "allowed: " in message
        return
    assert isinstance(config, Config)
    # Accepted numbers must be finite and modest before an engine is built from them: a
    # missing bound then fails here, rather than by allocating gigabytes in the engine.
    for name, _, _ in Config.options():
        v = getattr(config, name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            assert math.isfinite(v) and abs(v) <= 1e10, f"{name}={v!r} accepted"
    serve_one_request(config, f"{key}={value!r:.60}")


def serve_one_request(config: Config, label: str) -> None:
    changes = {k: True for k in ("rate_limiting", "resource_allocation")
               if getattr(config, k) is False}
    gate = PulseGate(config.replace(**changes, state_dir=None, state_redis_url=None,
                                    alert_webhook=None, otel=False, prometheus=False,
                                    multivariate=False, behaviour_forest=False))
    try:
        def app(environ: Any, start_response: Any) -> Iterator[bytes]:
            start_response("200 OK", [("content-type", "text/plain")])
            yield b"ok"

        response = Client(PulseGateWSGIMiddleware(app, gate=gate)).get("/x")
        assert response.status_code in (200, 429, 503), label
        assert gate.faults.total == 0, (label, gate.faults.by_kind)
    finally:
        gate.close()
