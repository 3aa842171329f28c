"""pulsegate.backlog: work handed to the scheduler thread, in order, none dropped."""

from __future__ import annotations

import doctest
import threading

from pulsegate import backlog
from pulsegate.backlog import Backlog


def test_doctests_pass() -> None:
    assert doctest.testmod(backlog).failed == 0


def test_items_are_handled_in_order_and_none_is_dropped_past_the_limit() -> None:
    seen: list[int] = []
    work: Backlog[int] = Backlog(seen.append, on_fault=lambda exc: None, limit=8)
    for i in range(100):
        work.put(i)
        assert len(work) <= 8  # bounded whatever the producer does
    work.drain()
    assert seen == list(range(100))


def test_a_fault_is_reported_and_the_drain_goes_on() -> None:
    seen: list[int] = []
    faults: list[Exception] = []

    def handle(i: int) -> None:
        if i == 2:
            raise ValueError("bad item")
        seen.append(i)

    work: Backlog[int] = Backlog(handle, faults.append)
    for i in range(5):
        work.put(i)
    assert work.drain() == 5
    assert seen == [0, 1, 3, 4] and [str(e) for e in faults] == ["bad item"]


def test_concurrent_producers_and_drains_lose_nothing() -> None:
    seen: list[int] = []
    work: Backlog[int] = Backlog(seen.append, on_fault=lambda exc: None, limit=64)

    def produce(base: int) -> None:
        for i in range(2000):
            work.put(base + i)
            if i % 500 == 0:
                work.drain()

    threads = [threading.Thread(target=produce, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work.drain()
    assert sorted(seen) == sorted(k * 10_000 + i for k in range(4) for i in range(2000))
    for k in range(4):  # each producer's items in its own order
        mine = [x for x in seen if k * 10_000 <= x < (k + 1) * 10_000]
        assert mine == sorted(mine)
