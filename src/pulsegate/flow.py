"""Flows of I/O steps driven by a blocking or an asyncio runner (admission written once).

The way httpx's ``auth_flow`` serves both its clients: the logic of a check (rate
limit, breaker and fallback around Redis, the allocator's queue) is a generator that
``yield``\\ s a :class:`Step` only where I/O happens -- a Redis round trip, a wait in
the allocator's queue -- and gets the step's result back. :func:`run` does each step
by blocking (threads, WSGI); :func:`run_async` awaits it (asyncio). Nothing else is
written twice: each step's two one-line I/O forms are the only sync/async pair left.

A flow that needs no I/O (in-process buckets, a free slot) yields nothing and costs one
generator; flows nest with ``yield from``; a step that raises has its exception thrown
into the flow at the ``yield`` (so a ``try``/``with`` around it -- the circuit breaker's
guard, the allocator giving a granted slot back on cancellation -- sees it).

>>> def double_remote(x):
...     y = yield Constant(x)          # "I/O": the runner answers with the step's result
...     return 2 * y
>>> run(double_remote(21))
42
>>> import asyncio
>>> asyncio.run(run_async(double_remote(4)))
8
"""

from __future__ import annotations

from collections.abc import Generator
from types import GeneratorType
from typing import Any, Protocol, TypeAlias, TypeVar, cast

T = TypeVar("T")


class Step(Protocol):
    """One piece of I/O a flow waits for, in its blocking and its awaiting form."""

    def call(self) -> Any: ...

    async def acall(self) -> Any: ...


#: A flow: yields steps, receives each step's result, returns its answer.
Flow = Generator[Step, Any, T]


def run(flow: Flow[T]) -> T:
    """Drive ``flow`` to its end, doing each step by blocking."""
    try:
        step = next(flow)
        while True:
            try:
                result = step.call()
            except BaseException as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        answer: T = done.value
        return answer


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` to its end, awaiting each step (never blocks the event loop)."""
    try:
        step = next(flow)
        while True:
            try:
                result = await step.acall()
            except BaseException as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        answer: T = done.value
        return answer


#: An answer now, or a flow that will give it: the form of a check whose common case
#: needs no I/O -- answered without creating a generator (``admission`` in
#: control/gatekeeper.py: a generator and its StopIteration per request are ~7 % of the
#: control step's instructions, ``benchmarks/control_overhead.py --callgrind``).
Maybe: TypeAlias = "T | Flow[T]"


def settle(answer: Maybe[T]) -> T:
    """The answer of :data:`Maybe`, running the flow blocking if it is one."""
    if isinstance(answer, GeneratorType):
        return run(cast("Flow[T]", answer))
    return cast("T", answer)


async def settle_async(answer: Maybe[T]) -> T:
    """The answer of :data:`Maybe`, awaiting the flow if it is one."""
    if isinstance(answer, GeneratorType):
        return await run_async(cast("Flow[T]", answer))
    return cast("T", answer)


def as_flow(answer: Maybe[T]) -> Flow[T]:
    """A :data:`Maybe` as a flow, to ``yield from`` inside another flow."""
    if isinstance(answer, GeneratorType):
        return (yield from cast("Flow[T]", answer))
    return cast("T", answer)


class Constant:
    """A step whose result is known (tests, and the doctest above)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def call(self) -> Any:
        return self.value

    async def acall(self) -> Any:
        return self.value
