"""Config: defaults, constructors, and a clear ConfigError for every invalid value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pulsegate import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_documented_seed_values() -> None:
    c = Config()
    assert (c.alpha, c.z_threshold, c.warmup, c.prediction_threshold) == (0.3, 3.0, 30, 0.7)
    assert c.enabled and c.headers == "all" and c.max_endpoints == 1000
    assert c.performance_prediction and c.anomaly_detection and c.query_analysis
    assert not c.rate_limiting and not c.resource_allocation


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().alpha = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("enabled", "maybe", "true or false"),
        ("headers", "some", "all | safe | none"),
        ("exclude_paths", ["health"], "starting with '/'"),
        ("exclude_paths", 42, "a list of URL paths"),
        ("max_endpoints", 0, "an integer >= 1"),
        ("max_endpoints", 2.5, "an integer >= 1"),
        ("measure_cpu", 3, "true or false"),
        ("memory_sample_every", 0, "an integer >= 1"),
        ("memory_sample_budget_us", -1, "a number >= 0"),
        ("cpu_sample_every", 0, "an integer >= 1"),
        ("state_dir", 5, "a string of at most 4096 characters, or none"),
        ("alpha", 0, "a number > 0 and <= 1"),
        ("alpha", 1.5, "a number > 0 and <= 1"),
        ("alpha", "abc", "a number > 0 and <= 1"),
        ("alpha", float("nan"), "a number > 0 and <= 1"),
        ("z_threshold", -1, "a number > 0"),
        ("warmup", 0, "an integer >= 1"),
        ("prediction_threshold", 1.2, "a number >= 0 and <= 1"),
        ("performance_prediction", "sometimes", "true or false"),
        ("anomaly_detection", None, "true or false"),
        ("retention", 0, "a number >= 1"),
        ("aggregation_window", 0.5, "a number >= 1"),
        ("max_recent", 0, "an integer >= 1"),
        ("query_analysis", "x", "true or false"),
        ("rate_limiting", "x", "true or false"),
        ("resource_allocation", "x", "true or false"),
        ("target_latency_ms", 0, "a number > 0"),
        ("max_memory_mb", -5, "a number > 0 and <= 1_000_000_000, or none"),
        ("cpu_threshold", 1.5, "a number > 0 and <= 1"),
        ("throughput_target", "fast", "a number > 0 and <= 1_000_000_000, or none"),
        ("extra", "[1, 2]", "a mapping"),
    ],
)
def test_invalid_values_name_key_value_and_what_is_allowed(key: str, value: object,
                                                           allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{key: value})
    message = str(info.value)
    assert info.value.key == key
    assert f"invalid {key}=" in message and repr(value) in message
    assert allowed in message


def test_values_are_normalised() -> None:
    c = Config(alpha="0.5", warmup="10", enabled="off", headers="SAFE",
               exclude_paths="/health/, /ping", max_memory_mb="none")
    assert (c.alpha, c.warmup, c.enabled, c.headers) == (0.5, 10, False, "safe")
    assert c.exclude_paths == ("/health", "/ping") and c.max_memory_mb is None


def test_from_env_reads_prefixed_variables_and_rejects_typos() -> None:
    c = Config.from_env({"PULSEGATE_ALPHA": "0.2", "PULSEGATE_HEADERS": "none",
                         "OTHER": "x"}, warmup=5)
    assert (c.alpha, c.headers, c.warmup) == (0.2, "none", 5)
    with pytest.raises(ConfigError, match="PULSEGATE_ALHPA"):
        Config.from_env({"PULSEGATE_ALHPA": "0.2"})
    with pytest.raises(ConfigError, match="alpha"):
        Config.from_env({"PULSEGATE_ALPHA": "2"})


def test_from_mapping_accepts_prefixed_any_case_keys() -> None:
    c = Config.from_mapping({"PULSEGATE_ALPHA": 0.4, "warmup": 7}, prefix="PULSEGATE_")
    assert (c.alpha, c.warmup) == (0.4, 7)
    with pytest.raises(ConfigError, match="unknown option nope=1"):
        Config.from_mapping({"nope": 1})


def test_every_option_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", doc, flags=re.M))
    missing = [name for name, _, _ in Config.options() if name not in documented]
    assert not missing, f"options missing from docs/configuration.md: {missing}"
    unknown = documented - {name for name, _, _ in Config.options()}
    assert not unknown, f"docs/configuration.md lists unknown options: {sorted(unknown)}"


def test_every_option_is_checked_and_rejects_garbage_by_name() -> None:
    garbage = object()
    unchecked = []
    for f in dataclasses.fields(Config):
        check = f.metadata.get("check")
        if check is None:
            unchecked.append(f.name)
            continue
        with pytest.raises(ConfigError) as info:
            Config(**{f.name: garbage})
        assert info.value.key.startswith(f.name), f.name
        assert f"invalid {f.name}" in str(info.value) and "allowed:" in str(info.value)
    assert unchecked == [], f"options without a check: {unchecked}"
