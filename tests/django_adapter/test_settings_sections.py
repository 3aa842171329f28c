"""``settings.PULSEGATE`` keeps its flat keys with the configuration in sections
(issue 19, item 6): the project's engine reads each section, and a bad value of any
section is the same ``ConfigError`` naming key, value and what is allowed."""

from __future__ import annotations

import pytest
from django.test import override_settings

from pulsegate import ConfigError
from pulsegate.django.gate import config_from_settings, get_gate, set_gate
from test_config_sections import BAD, NAMES


def test_flat_settings_reach_their_sections() -> None:
    with override_settings(PULSEGATE={"rate_limiting": True, "TRUST_SHIFT_RATE": "2",
                                      "alpha": 0.2, "dashboard_points": 10}):
        gate = get_gate()
        try:
            config = gate.config
            assert config.control.rate_limiting and config.control.trust_shift_rate == 2
            assert config.model.alpha == 0.2 and config.export.dashboard_points == 10
        finally:
            gate.close()
    set_gate(None)


@pytest.mark.parametrize("section", NAMES)
def test_a_bad_value_of_any_section_names_key_value_and_what_is_allowed(section: str) -> None:
    key, value, allowed = BAD[section]
    with override_settings(PULSEGATE={key: value}), pytest.raises(ConfigError) as info:
        config_from_settings()
    assert (info.value.key, info.value.value, info.value.allowed) == (key, value, allowed)
    set_gate(None)
