"""One configuration error path (issue 20, problem 5): a typo or a bad value is a short
``ConfigError`` -- key, value, what is allowed, "did you mean" for a near miss -- from
every entry point, never a bare ``TypeError`` or a list of every option name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pulsegate import Config, ConfigError, PulseGate

SOME_OTHER_OPTIONS = ("accuracy_targets", "aggregation_window", "breaker_failures",
                      "dashboard_allow_loopback", "monitoring_interval")


def assert_short_suggestion(exc: ConfigError, key: str, suggestion: str) -> None:
    message = str(exc)
    assert exc.key == key and exc.suggestion == suggestion, message
    assert message.endswith(f"did you mean {suggestion}?"), message
    assert len(message) < 200, message
    assert not any(name in message for name in SOME_OTHER_OPTIONS), message


def _starlette(**options: Any) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from pulsegate.asgi import PulseGateMiddleware

    app = Starlette()
    app.add_middleware(PulseGateMiddleware, **options)
    with TestClient(app) as client:  # Starlette builds its middleware stack here
        client.get("/")


def _wsgi(**options: Any) -> None:
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    PulseGateWSGIMiddleware(lambda environ, start_response: [], **options)


def _flask_extension(**options: Any) -> None:
    from flask import Flask

    from pulsegate.flask import PulseGate as FlaskPulseGate

    FlaskPulseGate(Flask(__name__), **options)


KEYWORD_ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "Config": Config, "PulseGate": PulseGate, "Config.replace": Config().replace,
    "add_middleware(PulseGateMiddleware)": _starlette, "PulseGateWSGIMiddleware": _wsgi,
}


@pytest.mark.parametrize("entry", sorted(KEYWORD_ENTRY_POINTS))
def test_a_misspelt_keyword_argument_is_a_config_error_with_a_suggestion(entry: str) -> None:
    with pytest.raises(ConfigError) as info:
        KEYWORD_ENTRY_POINTS[entry](z_treshold=2)
    assert_short_suggestion(info.value, "z_treshold", "z_threshold")
    assert str(info.value).startswith("pulsegate: unknown option z_treshold=2; allowed: ")


def test_flask_extension_keyword_typo() -> None:
    with pytest.raises(ConfigError) as info:
        _flask_extension(z_treshold=2)
    assert_short_suggestion(info.value, "z_treshold", "z_threshold")


def test_flask_extension_with_a_gate_and_options() -> None:
    gate = PulseGate()
    try:
        with pytest.raises(ConfigError, match="not both"):
            _flask_extension(gate=gate, alpha=0.2)
    finally:
        gate.close()


def test_flask_app_config_typo() -> None:
    from flask import Flask

    from pulsegate.flask import PulseGate as FlaskPulseGate

    app = Flask(__name__)
    app.config["PULSEGATE_WARMPU"] = 5
    with pytest.raises(ConfigError) as info:
        FlaskPulseGate(app)
    assert_short_suggestion(info.value, "PULSEGATE_WARMPU", "PULSEGATE_WARMUP")


def test_flask_app_config_bad_value() -> None:
    from flask import Flask

    from pulsegate.flask import PulseGate as FlaskPulseGate

    app = Flask(__name__)
    app.config["PULSEGATE_MAX_QUEUE_WAIT"] = float("inf")
    with pytest.raises(ConfigError) as info:
        FlaskPulseGate(app)
    assert info.value.key == "max_queue_wait"
    assert "allowed: a number >= 0 and <= 3_600" in str(info.value)


def test_mapping_keys_are_suggested_in_their_own_spelling() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"z_treshold": 2})
    assert_short_suggestion(info.value, "z_treshold", "z_threshold")
    with pytest.raises(ConfigError) as info:
        Config.from_mapping({"PULSEGATE_Z_TRESHOLD": 2}, prefix="PULSEGATE_")
    assert_short_suggestion(info.value, "PULSEGATE_Z_TRESHOLD", "PULSEGATE_Z_THRESHOLD")


def test_environment_typo() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({"PULSEGATE_ALHPA": "0.2"})
    assert_short_suggestion(info.value, "PULSEGATE_ALHPA", "PULSEGATE_ALPHA")


def test_far_misses_get_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        Config(completely_unrelated=1)
    assert info.value.suggestion is None and "did you mean" not in str(info.value)


def test_a_near_miss_among_choices_is_suggested() -> None:
    with pytest.raises(ConfigError) as info:
        Config(seasonality="dayly")
    assert str(info.value) == ("pulsegate: invalid seasonality='dayly'; allowed: auto | daily "
                               "| weekly | off; did you mean 'daily'?")


def test_keyword_typos_still_type_check() -> None:
    """The run-time check wraps the dataclass __init__ without hiding its signature."""
    import inspect

    assert "z_threshold" in inspect.signature(Config).parameters


@pytest.mark.parametrize("middleware", ["asgi", "wsgi"])
def test_a_gate_and_options_together_is_a_config_error(middleware: str) -> None:
    """Options next to ``gate=`` would be silently ignored: refused instead."""
    from pulsegate.asgi import PulseGateMiddleware
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    cls: Any = PulseGateMiddleware if middleware == "asgi" else PulseGateWSGIMiddleware
    gate = PulseGate()
    try:
        with pytest.raises(ConfigError) as info:
            cls(lambda *args: None, gate=gate, z_threshold=2)
        assert info.value.key == "gate" and "not both" in str(info.value)
    finally:
        gate.close()


def test_a_config_error_is_caught_as_the_type_error_and_value_error_it_replaced() -> None:
    # An unknown keyword used to surface as Python's TypeError, a bad value as a
    # ValueError: handlers written for either keep working.
    with pytest.raises(TypeError):
        Config(z_treshold=2)
    with pytest.raises(ValueError):
        Config(alpha=float("nan"))
