"""The half-open trial is resolved whatever happens to it (issue 18, hole 6): success,
any exception, a timeout, a cancellation. Before, a trial cancelled or failing with
anything but a Redis error left the breaker half-open with its trial taken: Redis was
never tried again and the shared limit silently became per worker until a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fakeclock import FakeClock
from pulsegate.control.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from pulsegate.control.storage import RedisStorage
from pulsegate.flow import run_async


def half_open(clock: FakeClock) -> CircuitBreaker:
    """A breaker whose next ``allow()`` is the half-open trial."""
    b = CircuitBreaker(1, 10.0, clock=clock)
    b.failure()
    assert b.state == OPEN
    clock.t += 10.0
    return b


@pytest.mark.parametrize("exc", [RuntimeError("bug"), TimeoutError("slow"), ConnectionError()])
def test_an_exception_in_the_trial_reopens_the_breaker(exc: Exception) -> None:
    clock = FakeClock(0.0)
    b = half_open(clock)
    assert b.allow() and b.state == HALF_OPEN
    with pytest.raises(type(exc)), b.guard():
        raise exc
    assert b.state == OPEN and b.opens == 2
    clock.t += 10.0
    assert b.allow()  # the next trial comes after the timeout, as for any failure


def test_a_cancelled_trial_is_freed_for_the_next_caller() -> None:
    clock = FakeClock(0.0)
    b = half_open(clock)
    assert b.allow()
    with pytest.raises(asyncio.CancelledError), b.guard():
        raise asyncio.CancelledError
    assert b.state == HALF_OPEN  # cancellation says nothing about the remote
    assert b.allow()  # ... so the next caller makes the trial at once
    with b.guard():
        pass
    assert b.state == CLOSED


def test_an_abandoned_trial_expires() -> None:
    clock = FakeClock(0.0)
    b = half_open(clock)
    assert b.allow()  # a caller that never reports back
    assert not b.allow()
    clock.t += 10.0
    assert b.allow()


class FailingClient:
    """A redis client stand-in whose script raises what it is given."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def register_script(self, source: str) -> Any:
        def script(keys: list[str], args: list[str]) -> Any:
            self.calls += 1
            raise self.exc
        return script

    def close(self) -> None:
        pass


def test_storage_falls_back_and_resolves_on_an_unexpected_exception() -> None:
    clock = FakeClock(0.0)
    b = half_open(clock)
    client = FailingClient(RuntimeError("driver bug"))
    seen: list[BaseException] = []
    s = RedisStorage(breaker=b, client=client, clock=clock, on_fallback=seen.append)
    allowed, _ = s.take("ip:1", "", 1.0, 5.0, 1.0)  # no exception reaches the request
    assert allowed and s.fallbacks == 1 and isinstance(seen[0], RuntimeError)
    assert b.state == OPEN
    clock.t += 10.0
    s.take("ip:1", "", 1.0, 5.0, 1.0)
    assert client.calls == 2  # Redis is tried again after the timeout


async def _silent_server() -> tuple[asyncio.AbstractServer, list[bytes]]:
    """A TCP server that reads and never answers: a hung Redis."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            received.append(data)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), received


@pytest.mark.parametrize("how", ["cancel", "wait_for"])
async def test_async_trial_cancelled_or_timed_out_by_the_caller(how: str) -> None:
    server, received = await _silent_server()
    port = server.sockets[0].getsockname()[1]
    clock = FakeClock(0.0)
    b = half_open(clock)
    s = RedisStorage(f"redis://127.0.0.1:{port}/0", breaker=b, clock=clock,
                     socket_timeout=5.0, on_fallback=lambda exc: None)
    try:
        if how == "cancel":
            task = asyncio.create_task(run_async(s.take_flow("ip:1", "", 1.0, 5.0, 1.0)))
            while not received:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:  # the app's own deadline around the request (asyncio.timeout / wait_for)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(run_async(s.take_flow("ip:1", "", 1.0, 5.0, 1.0)), 0.2)
        assert b.state == HALF_OPEN
        before = len(received)
        # The next check makes the trial again (it reaches the server), instead of
        # falling back for ever.
        task = asyncio.create_task(run_async(s.take_flow("ip:1", "", 1.0, 5.0, 1.0)))
        for _ in range(300):
            if len(received) > before:
                break
            await asyncio.sleep(0.01)
        assert len(received) > before
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        server.close()
        if s._aclient is not None:
            await s._aclient.aclose()
