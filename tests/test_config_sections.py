"""Configuration in sections (issue 19, item 6): ``config.core``, ``.model``,
``.queries``, ``.control``, ``.persistence``, ``.registry``, ``.export`` hold each
subsystem's options, while keyword arguments, ``PULSEGATE_*`` variables, mappings
(Django's ``PULSEGATE``) and Flask's ``app.config`` take the flat names unchanged and
refuse a bad value with the same ``ConfigError``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pulsegate import Config, ConfigError, PulseGate
from pulsegate.config import SECTIONS, ControlConfig, ModelConfig

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("core", "model", "queries", "control", "persistence", "registry", "export", "io",
         "units", "respcache", "advice")


def section_options() -> dict[str, tuple[str, ...]]:
    return {name: cls.option_names() for name, cls in Config.sections().items()}


def test_the_sections_are_the_documented_ones_in_order() -> None:
    assert tuple(Config.sections()) == NAMES


def test_every_option_is_in_exactly_one_section_in_the_flat_order() -> None:
    grouped = [name for names in section_options().values() for name in names]
    assert grouped == [name for name, _, _ in Config.options()]


def test_a_section_holds_its_options_as_the_config_does() -> None:
    config = Config(alpha="0.2", rate_limit="5/minute", trust_shift_rate=2, otel=False,
                    snapshot_interval=30, exclude_paths="/ping/", accuracy_target=0.5)
    for name, options in section_options().items():
        section = getattr(config, name)
        assert type(section) is Config.sections()[name]
        assert {o: getattr(section, o) for o in options} == {o: getattr(config, o) for o in options}
    assert config.model.alpha == 0.2 and config.core.exclude_paths == ("/ping",)
    assert config.control.rate_limit == "5/minute" and config.control.trust_shift_rate == 2


def test_a_section_sees_nothing_of_the_other_sections() -> None:
    control = Config().control
    assert not hasattr(control, "alpha") and not hasattr(control, "dashboard_path")
    assert not isinstance(control, Config)


def test_a_section_is_frozen_and_built_once_per_config() -> None:
    config = Config()
    assert config.control is config.control
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.control.rate_limit = "1/second"  # type: ignore[misc]


def test_replace_gives_fresh_sections() -> None:
    config = Config(alpha=0.2)
    assert config.model.alpha == 0.2
    changed = config.replace(alpha=0.5)
    assert changed.model.alpha == 0.5 and config.model.alpha == 0.2


def test_configs_with_equal_options_are_equal_whether_or_not_a_section_was_read() -> None:
    a, b = Config(alpha=0.2), Config(alpha=0.2)
    assert a.model.alpha == 0.2
    assert a == b


def test_a_section_built_alone_is_checked_like_config() -> None:
    assert ControlConfig(rate_limit="5/minute") == Config(rate_limit="5/minute").control
    assert ModelConfig(alpha="0.5").alpha == 0.5  # normalised as in Config
    with pytest.raises(ConfigError) as info:
        ModelConfig(alpha=1.5)
    assert str(info.value) == "pulsegate: invalid alpha=1.5; allowed: a number > 0 and <= 1"
    with pytest.raises(ConfigError, match=r"min_concurrency=300; allowed: <= max_concurrency"):
        ControlConfig(min_concurrency=300)


def test_a_section_names_the_option_a_typo_was_meant_to_be() -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig(z_treshold=2)
    assert info.value.suggestion == "z_threshold"
    assert "an option of config.model" in info.value.allowed
    with pytest.raises(TypeError) as error:  # as a bad keyword always was
        ControlConfig(alpha=0.2)
    assert isinstance(error.value, ConfigError) and error.value.suggestion is None
    assert str(error.value) == ("pulsegate: unknown option alpha=0.2; allowed: an option of "
                                "config.control (docs/configuration.md); alpha is an option "
                                "of config.model")


# --- every entry point refuses a bad value of every section the same way ----------------

#: one bad value per section, as a string (what the environment and settings files carry)
BAD = {"core": ("headers", "sfe", "all | safe | none"),
       "model": ("alpha", "1.5", "a number > 0 and <= 1"),
       "queries": ("nplusone_min_repeats", "1", "an integer >= 2 and <= 1_000_000"),
       "control": ("trust_shift_rate", "0.5", "a number >= 1 and <= 1_000"),
       "persistence": ("snapshot_interval", "0", "a number >= 1 and <= 86_400"),
       "registry": ("accuracy_target", "2", "a number >= 0 and <= 1"),
       "export": ("dashboard_points", "1", "an integer >= 2 and <= 10_000"),
       "io": ("outbound_max_routes", "0", "an integer >= 1 and <= 10_000"),
       "units": ("max_units", "0", "an integer >= 1 and <= 100_000"),
       "respcache": ("response_cache_ttl", "0", "a number > 0 and <= 86_400"),
       "advice": ("advisor_top", "0", "an integer >= 1 and <= 1_000")}


def _flask(key: str, value: str) -> Any:
    from flask import Flask

    from pulsegate.flask import PulseGate as FlaskPulseGate

    app = Flask(__name__)
    app.config["PULSEGATE_" + key.upper()] = value
    return FlaskPulseGate(app)


def _asgi(key: str, value: str) -> Any:
    from pulsegate.asgi import PulseGateMiddleware

    return PulseGateMiddleware(lambda *args: None, **{key: value})


def _wsgi(key: str, value: str) -> Any:
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    return PulseGateWSGIMiddleware(lambda *args: [], **{key: value})


ENTRY_POINTS: dict[str, Callable[[str, str], Any]] = {
    "Config(**kwargs)": lambda k, v: Config(**{k: v}),
    "PulseGate(**kwargs)": lambda k, v: PulseGate(**{k: v}),
    "Config.replace": lambda k, v: Config().replace(**{k: v}),
    "Config.from_mapping": lambda k, v: Config.from_mapping({k: v}),
    "PULSEGATE_* environment": lambda k, v: Config.from_env({"PULSEGATE_" + k.upper(): v}),
    "Flask app.config": _flask,
    "ASGI middleware": _asgi,
    "WSGI middleware": _wsgi,
    "the section alone": lambda k, v: next(
        cls for cls in SECTIONS if k in cls.option_names())(**{k: v}),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("section", NAMES)
def test_every_entry_point_names_key_value_and_what_is_allowed(entry: str, section: str) -> None:
    key, value, allowed = BAD[section]
    assert key in Config.sections()[section].option_names()
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[entry](key, value)
    assert (info.value.key, info.value.value, info.value.allowed) == (key, value, allowed)
    assert str(info.value).startswith(f"pulsegate: invalid {key}={value!r}; allowed: {allowed}")


# --- docs/configuration.md is grouped the same way -------------------------------------


def documented_sections() -> dict[str, list[str]]:
    """section name -> the options of the tables under its ``## ... (`config.NAME`)``
    heading, in document order (sub-headings ### included)."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    out: dict[str, list[str]] = {}
    for chunk in re.split(r"^## ", doc, flags=re.M)[1:]:
        heading = re.match(r".*\(`config\.([a-z]+)`\)\s*$", chunk.splitlines()[0])
        if heading:
            out[heading.group(1)] = re.findall(r"^\|\s*`([a-z_]+)`\s*\|", chunk, flags=re.M)
    return out


def test_the_reference_lists_each_section_under_its_own_heading_in_order() -> None:
    documented = documented_sections()
    assert list(documented) == list(NAMES)
    for name, options in section_options().items():
        assert documented[name] == list(options), name


def test_the_allowed_values_are_grouped_like_the_sections() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    allowed = doc.split("## Allowed values", 1)[1]
    groups = [re.findall(r"^\|\s*`([a-z_]+)`\s*\|", chunk, flags=re.M)
              for chunk in re.split(r"^### ", allowed, flags=re.M)[1:]]
    assert groups == [list(options) for options in section_options().values()]
