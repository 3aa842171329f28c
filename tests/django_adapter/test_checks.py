"""``manage.py check`` reports a bad ``settings.PULSEGATE`` once, short (issue 20)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from config_garbage import FREE_FORM, GARBAGE, documented_options, refused_or_served
from pulsegate import ConfigError
from pulsegate.django.checks import check_settings
from pulsegate.django.gate import config_from_settings, set_gate


def check_output(settings_value: object) -> str:
    with override_settings(PULSEGATE=settings_value), pytest.raises(SystemCheckError) as info:
        call_command("check")
    set_gate(None)
    return str(info.value)


def test_a_typo_is_reported_once_with_a_suggestion_and_no_option_list() -> None:
    out = check_output({"z_treshold": 2})
    assert "(pulsegate.E001) pulsegate: unknown option z_treshold=2" in out
    assert out.count("did you mean z_threshold?") == 1
    assert out.count("allowed:") == 1, out
    assert "accuracy_targets" not in out and "dashboard_points" not in out


def test_a_bad_value_is_reported_once_with_its_range() -> None:
    out = check_output({"max_recent": 1e30})
    assert out.count("allowed: an integer >= 1 and <= 1_000_000") == 1, out


def test_settings_that_are_not_a_dict_are_a_config_error() -> None:
    with override_settings(PULSEGATE=["alpha"]), pytest.raises(ConfigError) as info:
        config_from_settings()
    assert info.value.key == "PULSEGATE"
    assert "(pulsegate.E002)" in check_output(["alpha"])


@pytest.mark.parametrize("key", [k for k in documented_options() if k not in FREE_FORM])
def test_garbage_in_settings_is_an_error_of_the_check_or_harmless(key: str) -> None:
    """Issue 18: the same garbage as tests/test_config_totality.py, through
    ``settings.PULSEGATE``: the system check names the key, or the engine built from the
    settings serves without an internal fault."""
    for value in GARBAGE:
        with override_settings(PULSEGATE={key: value}):
            errors = check_settings()
            if errors:
                (error,) = errors
                assert error.id == "pulsegate.E001" and key in error.msg, error.msg
            refused_or_served(key, config_from_settings, value)
    set_gate(None)
