"""System check: ``settings.PULSEGATE`` must build a valid :class:`~pulsegate.Config`.

``manage.py check`` (and every ``runserver`` / ``migrate``) reports a bad option as
``pulsegate.E001`` naming the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any

from django.core import checks

from pulsegate.config import ConfigError


@checks.register("pulsegate")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from pulsegate.django.gate import config_from_settings

    try:
        config_from_settings()
    except ConfigError as exc:
        # The message already names the key, the value, what is allowed and the nearest
        # option; the hint only says where the rest is (not the allowed text again).
        return [checks.Error(
            str(exc), hint="Every option and its allowed values: docs/configuration.md.",
            obj="settings.PULSEGATE", id="pulsegate.E002" if exc.key == "PULSEGATE" else
            "pulsegate.E001")]
    return []
