"""Django integration: two lines in ``settings.py``::

    INSTALLED_APPS = [..., "pulsegate.django"]          # checks, query hooks, manage.py pulsegate
    MIDDLEWARE = ["pulsegate.django.PulseGateMiddleware", ...]
    PULSEGATE = {"z_threshold": 3.0, ...}               # optional, same keys as Config

Names are exported lazily so listing the app in ``INSTALLED_APPS`` imports nothing that
needs configured settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.django.gate import get_gate
    from pulsegate.django.middleware import PulseGateMiddleware

__all__ = ["PulseGateMiddleware", "get_gate"]


def __getattr__(name: str) -> Any:
    if name == "PulseGateMiddleware":
        from pulsegate.django.middleware import PulseGateMiddleware

        return PulseGateMiddleware
    if name == "get_gate":
        from pulsegate.django.gate import get_gate

        return get_gate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
