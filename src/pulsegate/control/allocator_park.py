"""Waiting for a slot of the :class:`~pulsegate.control.allocator.ConcurrencyAllocator`:
:class:`Park` is the step of its acquire flow that waits for a queued waiter to be
resolved, on a ``threading.Event`` or on a future of the running loop, so that one
:mod:`~pulsegate.flow` serves threads and asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Park", "Resolver"]


class Resolver(Protocol):
    """What a park needs of the allocator: to be told when its waiter is resolved
    (True), or that it is already (False)."""

    def notify_when_resolved(self, w: Any, notify: Callable[[], None]) -> bool: ...


class Park:
    """The step of the allocator's ``acquire_flow``: wait until the waiter is resolved
    (ticket or shed) or ``timeout`` passes -- on a ``threading.Event``, or on a future of
    the running loop."""

    __slots__ = ("allocator", "timeout", "waiter")

    def __init__(self, allocator: Resolver, waiter: object, timeout: float) -> None:
        self.allocator = allocator
        self.waiter = waiter
        self.timeout = timeout

    def call(self) -> None:
        event = threading.Event()
        if self.allocator.notify_when_resolved(self.waiter, event.set):
            event.wait(self.timeout)

    async def acall(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not fut.done():
                fut.set_result(None)

        def wake() -> None:  # slots are freed by any thread
            loop.call_soon_threadsafe(resolve)

        if self.allocator.notify_when_resolved(self.waiter, wake):
            try:
                await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                pass
