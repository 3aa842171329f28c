from __future__ import annotations

import asyncio
import heapq
import threading
import time

import pytest

from fakeclock import FakeClock
from pulsegate.control.allocator import ConcurrencyAllocator, Ticket, Waiter
from pulsegate.control.allocator_shares import class_caps
from pulsegate.control.qpolicy import N_STATES, QPolicy, decode, encode, prior
from pulsegate.flow import run_async


def alloc(limit: int = 10, **kw: object) -> tuple[ConcurrencyAllocator, FakeClock]:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(1, 100, limit, clock=clk, learn=False, **kw)  # type: ignore[arg-type]
    return a, clk


def test_class_shares_leave_headroom_for_higher_priority() -> None:
    a, _ = alloc(10)
    lows = [a.acquire_or_enqueue("low") for _ in range(8)]
    assert all(isinstance(t, Ticket) for t in lows)
    assert isinstance(a.acquire_or_enqueue("low"), Waiter)  # low may fill 75 % (7.5 -> 8)
    assert isinstance(a.acquire_or_enqueue("normal"), Ticket)  # normal 90 %
    assert isinstance(a.acquire_or_enqueue("high"), Ticket)  # high the last slot
    assert a.inflight == 10


def test_queue_serves_best_class_first_and_fifo_within() -> None:
    a, clk = alloc(2)
    t1, t2 = a.acquire_or_enqueue("high"), a.acquire_or_enqueue("high")
    assert isinstance(t1, Ticket) and isinstance(t2, Ticket)
    order: list[str] = []
    waiters = {}
    for name, prio in (("low1", "low"), ("norm", "normal"), ("high", "high"), ("low2", "low")):
        w = a.acquire_or_enqueue(prio, lambda n=name: order.append(n))
        assert isinstance(w, Waiter)
        waiters[name] = w
    clk.t = 0.01
    t1.release()
    assert order == ["high"] and waiters["high"].ticket is not None
    assert waiters["high"].ticket.waited == pytest.approx(0.01)
    t2.release()
    waiters["high"].ticket.release()
    # normal first; then low, whose 75 % share of 2 slots rounds up to both
    assert order == ["high", "norm", "low1"]
    waiters["norm"].ticket.release()  # type: ignore[union-attr]
    assert order == ["high", "norm", "low1", "low2"]


def test_full_queue_sheds_lowest_newest_waiter_never_high() -> None:
    a, _ = alloc(1, max_queue=2)
    assert isinstance(a.acquire_or_enqueue("normal"), Ticket)
    shed: list[str] = []
    w1 = a.acquire_or_enqueue("low", lambda: shed.append("low1"))
    w2 = a.acquire_or_enqueue("low", lambda: shed.append("low2"))
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    w3 = a.acquire_or_enqueue("high")
    assert isinstance(w3, Waiter) and shed == ["low2"] and w2.shed
    w4 = a.acquire_or_enqueue("high")
    assert isinstance(w4, Waiter) and shed == ["low2", "low1"]
    assert a.acquire_or_enqueue("high") is None  # queue full of highs: the arrival goes
    assert a.shed == [1, 0, 2]


def test_expire_sheds_after_max_queue_wait() -> None:
    a, clk = alloc(1, max_queue_wait=0.05)
    t = a.acquire_or_enqueue("normal")
    w = a.acquire_or_enqueue("low")
    assert isinstance(t, Ticket) and isinstance(w, Waiter)
    clk.t = 0.049
    assert a.expire() == 0
    clk.t = 0.05
    assert a.expire() == 1 and w.shed and a.queued == 0
    assert a.finish_wait(w) is None and a.shed[2] == 1  # counted once


def test_zero_wait_sheds_immediately() -> None:
    a, _ = alloc(1, max_queue_wait=0.0)
    assert isinstance(a.acquire_or_enqueue(), Ticket)
    assert a.acquire_or_enqueue() is None


def test_sync_acquire_waits_for_a_release_from_another_thread() -> None:
    a = ConcurrencyAllocator(1, 4, 1, learn=False, max_queue_wait=5.0)
    t = a.acquire("normal")
    assert t is not None
    got: list[Ticket | None] = []
    th = threading.Thread(target=lambda: got.append(a.acquire("high")))
    th.start()
    deadline = time.monotonic() + 10
    while a.queued == 0:
        assert time.monotonic() < deadline, "the waiter never queued"
    t.release()
    th.join(5)
    assert got and isinstance(got[0], Ticket) and got[0].waited >= 0
    assert a.acquire("low", timeout=0.001) is None  # one slot, taken: shed after the wait


async def test_async_acquire_wakes_on_release_and_times_out() -> None:
    a = ConcurrencyAllocator(1, 4, 1, learn=False, max_queue_wait=5.0)
    t = await run_async(a.acquire_flow("normal"))
    assert t is not None
    task = asyncio.create_task(run_async(a.acquire_flow("high")))
    deadline = time.monotonic() + 10
    while a.queued == 0:
        assert time.monotonic() < deadline, "the waiter never queued"
        await asyncio.sleep(0)
    t.release()
    t2 = await asyncio.wait_for(task, 5)
    assert isinstance(t2, Ticket) and a.inflight == 1
    assert await run_async(a.acquire_flow("low", timeout=0.001)) is None
    assert a.queued == 0 and a.shed[2] == 1
    t2.release()
    assert a.inflight == 0


def test_qpolicy_state_encoding_roundtrip_and_prior() -> None:
    seen = set()
    for lat in (0.1, 0.6, 0.9, 1.2, 2.0):
        for util in (0.1, 0.7, 1.0):
            for demand in (False, True):
                for pressure in (False, True):
                    s = encode(lat, util, demand, pressure)
                    seen.add(s)
                    assert decode(s)[2:] == (int(demand), int(pressure))
    assert seen == set(range(N_STATES))
    late = encode(2.0, 1.0, True, False)
    assert max(range(3), key=lambda i: prior(late)[i]) == 0  # shrink when late
    headroom = encode(0.3, 1.0, True, False)
    assert max(range(3), key=lambda i: prior(headroom)[i]) == 2  # grow with demand + headroom


def simulate(a: ConcurrencyAllocator, clk: FakeClock, workers: int, service: float,
             arrivals_per_s: float, seconds: float) -> list[float]:
    """Processor-sharing server: latency = service * max(1, in-flight / workers)."""
    done: list[tuple[float, int, Ticket]] = []
    lat: list[float] = []
    n = 0
    step = 1.0 / arrivals_per_s
    end = clk.t + seconds
    while clk.t < end:
        clk.t += step
        while done and done[0][0] <= clk.t:
            _, _, t = heapq.heappop(done)
            t.release()
        r = a.acquire_or_enqueue("normal")
        if isinstance(r, Ticket):
            latency = service * max(1.0, a.inflight / workers)
            lat.append(latency)
            n += 1
            heapq.heappush(done, (clk.t + latency, n, r))
        a.expire()
    return lat


def test_q_learning_shrinks_an_oversized_limit_until_latency_meets_target() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(2, 200, 150, target_latency=0.05, clock=clk, max_queue_wait=0.0,
                             policy=QPolicy(epsilon=0.0))
    lat = simulate(a, clk, workers=8, service=0.02, arrivals_per_s=2000, seconds=20)
    assert a.limit < 30, a.limit  # started at 150
    assert a.policy.steps > 50
    tail = lat[-2000:]
    assert sum(x <= 0.05 for x in tail) / len(tail) > 0.9


def test_q_learning_grows_an_undersized_limit_under_demand() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(2, 200, 2, target_latency=0.05, clock=clk, max_queue_wait=0.0,
                             policy=QPolicy(epsilon=0.0))
    simulate(a, clk, workers=8, service=0.02, arrivals_per_s=1000, seconds=20)
    assert 8 <= a.limit <= 25, a.limit


def test_state_roundtrip_and_validation() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(2, 200, 150, target_latency=0.05, clock=clk, max_queue_wait=0.0)
    simulate(a, clk, 8, 0.02, 2000, 3)
    s = a.state()
    b = ConcurrencyAllocator(2, 200, 50)
    b.load_state(s)
    assert b.limit == a.limit and b.policy.q == a.policy.q
    assert b.policy.q != QPolicy().q  # it learned something
    with pytest.raises(ValueError):
        b.load_state({"version": 1, "limit": 3, "policy": {"q": [[0.0]]}})
    with pytest.raises(ValueError):
        b.load_state({"version": 9})


def test_throughput_target_costs_reward_when_unmet() -> None:
    rewards = []
    for target in (None, 10_000.0):
        clk = FakeClock(0.0)
        a = ConcurrencyAllocator(2, 200, 20, target_latency=0.05, clock=clk, max_queue_wait=0.0,
                                 policy=QPolicy(epsilon=0.0), throughput_target=target)
        simulate(a, clk, workers=8, service=0.02, arrivals_per_s=200, seconds=2)
        rewards.append(a.last_window["reward"])
    # 200 req/s against a 10 000 req/s target: the same windows earn ~0.5 less.
    assert rewards[1] < rewards[0] - 0.4


def test_pressure_blocks_growth_and_shrinks() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(2, 200, 10, target_latency=0.05, clock=clk, max_queue_wait=0.0,
                             policy=QPolicy(epsilon=0.0),
                             pressure=lambda: 1.5 if clk.t > 3.0 else 0.0)  # from t = 3 s
    simulate(a, clk, workers=8, service=0.02, arrivals_per_s=1000, seconds=6)
    grown = max(lim for t, lim in a.history if t <= 3.0)
    assert grown > 10
    after = [lim for t, lim in a.history if t > 3.0]
    assert after == sorted(after, reverse=True) and after[-1] < grown  # only ever shrinks
    assert a.last_window["pressure"] is True


def test_low_priority_share_shrinks_when_latency_nears_target() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(1, 100, 20, target_latency=0.1, interval=0.05, min_samples=1,
                             clock=clk, policy=QPolicy(epsilon=0.0))
    assert a._caps == (20, 18, 15)
    t = a.try_acquire(2)
    assert t is not None
    clk.t = 0.06
    t.release(latency_s=0.095)  # a window at 0.95 x target: hold, but tighten the shares
    assert a.limit == 20 and a._caps == (20, 16, 10)
    t = a.try_acquire(2)
    assert t is not None
    clk.t = 0.12
    t.release(latency_s=0.02)  # latency back down: shares relax
    assert a._caps == class_caps(a.limit, hot=False)
