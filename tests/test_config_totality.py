"""Configuration is total (issue 18, hole 4) and has one error path (issue 20, problem 5).

Every option listed in docs/configuration.md is fed generated garbage -- NaN, the
infinities, 1e308, negatives, wrong types, huge strings, 400-digit rate counts, infinite
bursts and costs -- through keyword arguments, ``Config.from_mapping`` and the
environment. Each value is either refused with a short ``ConfigError`` naming the key,
or accepted and then served by an engine without one internal fault. The options come
from the document, so a new option is fuzzed (and its allowed values must be documented)
without anyone writing a test for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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


OPTIONS = documented_options()
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


def test_the_document_lists_every_option_and_the_fuzz_covers_them() -> None:
    assert set(OPTIONS) == {name for name, _, _ in Config.options()}


@pytest.mark.parametrize("key", OPTIONS)
def test_garbage_through_keyword_arguments_is_refused_or_harmless(key: str) -> None:
    if key in FREE_FORM:
        pytest.skip("documented as not validated")
    for value in GARBAGE:
        refused_or_served(key, lambda value=value: Config(**{key: value}), value)


@pytest.mark.parametrize("key", OPTIONS)
def test_garbage_through_a_mapping_is_refused_or_harmless(key: str) -> None:
    if key in FREE_FORM:
        pytest.skip("documented as not validated")
    for value in GARBAGE:
        refused_or_served(key, lambda value=value: Config.from_mapping(
            {"PULSEGATE_" + key.upper(): value}, prefix="PULSEGATE_"), value)


@pytest.mark.parametrize("key", OPTIONS)
def test_garbage_through_the_environment_is_refused_or_harmless(key: str) -> None:
    for value in ENV_GARBAGE:
        refused_or_served(key, lambda value=value: Config.from_env(
            {"PULSEGATE_" + key.upper(): value}), value)


@pytest.mark.parametrize(("key", "value"), [
    ("max_recent", 1e30), ("rate_limit", "1" * 400 + "/minute"), ("rate_limit_burst", math.inf),
    ("rate_limit_costs", {"/export": math.inf}), ("max_queue_wait", math.inf),
    ("state_redis_url", "garbage"), ("rate_limit_storage", "redis://:notaport"),
    ("alert_webhook", "https://"), ("tuning_grid", (0.5, 0.9, 1e-300)),
    ("rate_limit_routes", {"/login": "5/minute;inf"}), ("z_threshold", 1e308),
    ("state_namespace", "x" * 100_000), ("priority_header", "bad header"),
])
def test_the_reported_holes_are_refused_at_start_up(key: str, value: Any) -> None:
    """Issue 18 hole 4: each was accepted, then failed or silently did nothing later."""
    with pytest.raises(ConfigError) as info:
        PulseGate(**{key: value})
    assert info.value.key.startswith(key) and "allowed: " in str(info.value)


def test_every_number_has_a_finite_upper_bound() -> None:
    """A numeric option refuses 1e308 and inf whether given as a number or a string."""
    for name, default, _ in Config.options():
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            for huge in (1e308, math.inf, "1e308", "inf", 10**400):
                with pytest.raises(ConfigError):
                    Config(**{name: huge})


def test_every_option_documents_what_it_allows() -> None:
    """docs/configuration.md's "Allowed values" table is the checks' own text, bounds
    included, so the documented ranges cannot drift from the ones enforced."""
    documented = documented_allowed()
    expected = {}
    for name in OPTIONS:
        with pytest.raises(ConfigError) as info:
            Config(**{name: object()})
        expected[name] = info.value.allowed
    wrong = {n: a for n, a in expected.items() if documented.get(n) != a}
    rows = "\n".join(f"| `{n}` | {a.replace('|', chr(92) + '|')} |" for n, a in wrong.items())
    assert not wrong, f"fix these rows of the Allowed values table:\n{rows}"


def test_a_huge_bad_value_makes_a_short_message() -> None:
    with pytest.raises(ConfigError) as info:
        Config(state_namespace="x" * 1_000_000)
    assert len(str(info.value)) < 300 and "(1000002 chars)" in str(info.value)
