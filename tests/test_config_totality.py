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
from typing import Any

import pytest

from config_garbage import (
    ENV_GARBAGE,
    FREE_FORM,
    GARBAGE,
    documented_allowed,
    documented_options,
    refused_or_served,
)
from pulsegate import Config, ConfigError, PulseGate

OPTIONS = documented_options()
#: every option but the free-form ones, which are documented as not validated
VALIDATED = [key for key in OPTIONS if key not in FREE_FORM]


def test_the_document_lists_every_option_and_the_fuzz_covers_them() -> None:
    assert set(OPTIONS) == {name for name, _, _ in Config.options()}


@pytest.mark.parametrize("key", VALIDATED)
def test_garbage_through_flask_config_is_refused_or_harmless(key: str) -> None:
    from flask import Flask

    from pulsegate.flask import config_from_app

    app = Flask(__name__)
    for value in GARBAGE:
        app.config["PULSEGATE_" + key.upper()] = value
        refused_or_served(key, lambda: config_from_app(app), value)


@pytest.mark.parametrize("key", VALIDATED)
def test_garbage_through_keyword_arguments_is_refused_or_harmless(key: str) -> None:
    for value in GARBAGE:
        refused_or_served(key, lambda value=value: Config(**{key: value}), value)


@pytest.mark.parametrize("key", VALIDATED)
def test_garbage_through_a_mapping_is_refused_or_harmless(key: str) -> None:
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


def test_a_huge_unknown_key_makes_a_short_message() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"k" * 1_000_000: 1})
    assert len(str(info.value)) < 300 and info.value.key == "k" * 1_000_000


@pytest.mark.parametrize("key", OPTIONS)
def test_a_refused_environment_value_is_named_not_lost(key: str) -> None:
    """Attack probe (hsec6): the message names the value the variable held (or, for a
    list, its offending entry), never None -- ``PULSEGATE_TUNING_GRID`` of 400 digits
    was refused as ``tuning_grid=None``."""
    for value in ENV_GARBAGE:
        try:
            Config.from_env({"PULSEGATE_" + key.upper(): value})
        except ConfigError as exc:
            assert exc.key != key or exc.value is not None, str(exc)


def test_a_refused_tuning_grid_is_named_as_given() -> None:
    for value in ("9" * 400, "0.1,0.2", "0.1, 0.9, 5"):
        with pytest.raises(ConfigError) as info:
            Config.from_env({"PULSEGATE_TUNING_GRID": value})
        assert repr(value)[:40] in str(info.value)
