"""The process's engine for the Django project, built once from ``settings.PULSEGATE``.

The middleware, the query hooks and ``manage.py pulsegate`` all use :func:`get_gate`, so
they share one set of models. Changing ``PULSEGATE`` with ``override_settings`` (tests)
drops the engine, and the next caller gets one built from the new settings.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from pulsegate.config import Config, ConfigError
from pulsegate.engine import PulseGate

_lock = threading.Lock()
_gate: PulseGate | None = None


def config_from_settings() -> Config:
    """:class:`Config` from ``settings.PULSEGATE`` (a dict of options, case-insensitive
    keys); raises :class:`~pulsegate.ConfigError` for a bad key or value."""
    values = getattr(settings, "PULSEGATE", None) or {}
    if not isinstance(values, Mapping):
        raise ConfigError("PULSEGATE", values, "a dict of options (settings.PULSEGATE)")
    return Config.from_mapping(values)


def get_gate() -> PulseGate:
    """The project's engine (built on first use, validated then)."""
    global _gate
    gate = _gate
    if gate is None:
        with _lock:
            if _gate is None:
                _gate = PulseGate(config_from_settings())
            gate = _gate
    return gate


def built_gate() -> PulseGate | None:
    """The project's engine if this process has built one (None: not yet)."""
    return _gate


def set_gate(gate: PulseGate | None) -> None:
    """Use ``gate`` for the project (None: rebuild from settings on next use)."""
    global _gate
    with _lock:
        _gate = gate


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PULSEGATE":
        set_gate(None)


setting_changed.connect(_on_setting_changed, dispatch_uid="pulsegate-settings")
