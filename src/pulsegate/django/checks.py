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
        return [checks.Error(
            str(exc), hint=f"Fix PULSEGATE[{exc.key!r}] in settings: allowed {exc.allowed}.",
            obj="settings.PULSEGATE", id="pulsegate.E001")]
    except TypeError as exc:
        return [checks.Error(str(exc), hint="settings.PULSEGATE must be a dict of options.",
                             obj="settings.PULSEGATE", id="pulsegate.E002")]
    return []
