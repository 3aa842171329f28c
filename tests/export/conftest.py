"""Fixtures of the export tests; the helpers live in ``exportkit``."""

from __future__ import annotations

from typing import Any

import pytest
from exportkit import FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def app_factory(clock: FakeClock) -> Any:
    """``app_factory(**options) -> (asgi_app, gate)`` with pulsegate outermost."""

    def factory(**options: Any) -> tuple[Any, PulseGate]:
        gate = make_gate(clock, **options)
        return PulseGateMiddleware(build_app(clock), gate=gate), gate

    return factory
