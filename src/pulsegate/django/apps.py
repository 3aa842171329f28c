"""``INSTALLED_APPS += ["pulsegate.django"]``: system checks and query hooks."""

from __future__ import annotations

from django.apps import AppConfig


class PulseGateConfig(AppConfig):
    name = "pulsegate.django"
    label = "pulsegate"
    verbose_name = "pulsegate"

    def ready(self) -> None:
        # Registers the settings check (a bad PULSEGATE dict is a system check error).
        from pulsegate.django import checks  # noqa: F401

        # Query hooks (issue 3): an execute_wrapper on every connection + relationship
        # marks; costs one ContextVar read per statement outside a request/capture.
        from pulsegate.django.instrument import install

        install()
