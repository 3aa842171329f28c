"""No client picks its own rate-limit key (issue 18, hole 1), through the Django
middleware (sync handler and async handler)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from pulsegate.django import get_gate
from pulsegate.django.gate import set_gate
from pulsegate.records import RequestRecord
from spoof_shapes import SHAPES, N, Shape, check, gate_options, joined

MW = ["pulsegate.django.PulseGateMiddleware"]


@pytest.fixture(autouse=True)
def _fresh_gate() -> Iterator[None]:
    set_gate(None)
    yield
    set_gate(None)


class PeerAsyncClient(AsyncClient):
    """Django's AsyncClient always connects from 127.0.0.1; this one from ``peer``."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["client"] = [self.peer, 40000]
        return scope


def meta(shape: Shape, i: int) -> dict[str, str]:
    return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in joined(shape.headers(i)).items()}


def run(shape: Shape, sync: bool) -> None:
    with override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=MW, DEBUG=False,
                           PULSEGATE=gate_options(shape)):
        set_gate(None)
        keys: list[str | None] = []

        def listener(record: RequestRecord, ctx: Any) -> None:
            keys.append(record.client)

        get_gate().listeners.append(listener)
        if sync:
            c = Client(REMOTE_ADDR=shape.peer)
            statuses = [c.get("/books/1/", **meta(shape, i)).status_code  # type: ignore[arg-type]
                        for i in range(N)]
        else:
            async def go() -> list[int]:
                ac = PeerAsyncClient(shape.peer)
                return [(await ac.get("/async/", headers=joined(shape.headers(i)))).status_code
                        for i in range(N)]
            statuses = asyncio.run(go())
        check(shape, statuses, keys)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_django_sync(shape: Shape) -> None:
    run(shape, sync=True)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s.name in (
    "forwarded-for", "xff-forged-prefix", "x-real-ip-proxy", "bypassing-the-proxy")],
    ids=lambda s: s.name)
def test_django_async(shape: Shape) -> None:
    run(shape, sync=False)
