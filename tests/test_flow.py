"""The flow runners: one generator of I/O steps, driven blocking or awaited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pulsegate.flow import Constant, Flow, as_flow, run, run_async, settle, settle_async


class Failing:
    def call(self) -> Any:
        raise ConnectionError("down")

    async def acall(self) -> Any:
        raise ConnectionError("down")


def fetch_twice() -> Flow[list[Any]]:
    got = [(yield Constant(1))]
    try:
        got.append((yield Failing()))
    except ConnectionError as exc:  # a failed step is raised at its yield
        got.append(str(exc))
    got.append((yield Constant(3)))
    return got


def no_io() -> Flow[str]:
    return "answered without a step"
    yield


def test_both_runners_drive_the_same_flow_to_the_same_answer() -> None:
    assert run(fetch_twice()) == [1, "down", 3]
    assert asyncio.run(run_async(fetch_twice())) == [1, "down", 3]


def test_a_flow_without_steps_is_answered_at_once() -> None:
    assert run(no_io()) == "answered without a step"
    assert asyncio.run(run_async(no_io())) == "answered without a step"


def test_a_step_failure_the_flow_does_not_handle_propagates() -> None:
    def careless() -> Flow[None]:
        yield Failing()

    with pytest.raises(ConnectionError):
        run(careless())
    with pytest.raises(ConnectionError):
        asyncio.run(run_async(careless()))


def test_an_answer_now_or_a_flow_settles_the_same_way_in_both_runners() -> None:
    assert settle("now") == "now" and asyncio.run(settle_async("now")) == "now"
    assert settle(fetch_twice()) == [1, "down", 3]
    assert asyncio.run(settle_async(fetch_twice())) == [1, "down", 3]

    def outer() -> Flow[tuple[Any, Any]]:
        return ((yield from as_flow("now")), (yield from as_flow(fetch_twice())))

    assert run(outer()) == ("now", [1, "down", 3])
