from __future__ import annotations

from itertools import combinations

import pytest

from fakeclock import FakeClock
from pulsegate.control.allocator import ConcurrencyAllocator, Ticket, Waiter
from pulsegate.control.allocator_shares import SHARES, SHARES_HOT, class_caps
from pulsegate.control.qpolicy import QPolicy

LIMITS = range(1, 201)
#: every non-empty mix of classes (0 high, 1 normal, 2 low) arriving together
MIXES = [m for k in (1, 2, 3) for m in combinations((0, 1, 2), k)]


@pytest.mark.parametrize("hot", [False, True])
def test_caps_lose_no_slot_to_rounding_and_keep_priority_order(hot: bool) -> None:
    shares = SHARES_HOT if hot else SHARES
    for limit in LIMITS:
        caps = class_caps(limit, hot)
        assert caps[0] == limit
        assert limit >= caps[0] >= caps[1] >= caps[2] >= 1, (limit, caps)
        for cap, share in zip(caps, shares, strict=True):
            assert cap * 100 >= share * limit, (limit, caps)  # the share, rounded up
            if (100 - share) * limit >= 100:  # gives away a whole slot: the reserve exists
                assert cap < limit, (limit, caps)


def test_at_the_floor_normal_traffic_uses_every_slot() -> None:
    # limit 4 (the allocator's floor): int(4 x 0.9) = 3 kept a worker idle whenever no
    # high-priority request was in flight
    a = ConcurrencyAllocator(1, 100, 4, clock=FakeClock(0.0), learn=False)
    assert all(isinstance(a.acquire_or_enqueue("normal"), Ticket) for _ in range(4))
    assert isinstance(a.acquire_or_enqueue("low"), Waiter)
    b = ConcurrencyAllocator(1, 100, 5, clock=FakeClock(0.0), learn=False)
    assert all(isinstance(b.acquire_or_enqueue("normal"), Ticket) for _ in range(5))


def test_at_limit_five_when_hot_low_keeps_its_half_rounded_up() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(1, 100, 5, target_latency=0.1, interval=0.05, min_samples=1,
                             clock=clk, policy=QPolicy(epsilon=0.0))
    t = a.try_acquire(2)
    assert t is not None
    clk.t = 0.06
    t.release(latency_s=0.095)  # 0.95 x target: hold, shares tighten
    assert a.limit == 5
    lows = [a.acquire_or_enqueue("low") for _ in range(4)]
    assert [isinstance(x, Ticket) for x in lows] == [True, True, True, False]  # 3 of 5, not 2
    assert isinstance(a.acquire_or_enqueue("normal"), Ticket)  # 80 % of 5 = 4
    assert isinstance(a.acquire_or_enqueue("high"), Ticket)  # the last slot


@pytest.mark.parametrize("mix", MIXES)
def test_a_burst_of_any_class_mix_fills_its_best_class_cap_and_never_inverts(
        mix: tuple[int, ...]) -> None:
    for limit in LIMITS:
        clk = FakeClock(0.0)
        a = ConcurrencyAllocator(1, 1000, limit, max_queue=10_000, max_queue_wait=0.01,
                                 clock=clk, learn=False)
        for i in range(len(mix) * (limit + 1)):
            p = mix[i % len(mix)]
            before = a.inflight
            r = a.acquire_or_enqueue(p)
            if isinstance(r, Ticket):  # admitted: no better class is waiting, a slot was free
                assert not any(a.queues[q] for q in range(p + 1)) and before < limit
            else:
                assert isinstance(r, Waiter)
        best = min(mix)
        assert a.inflight == class_caps(limit, False)[best], (limit, mix)
        clk.t = 0.01
        a.expire()  # every waiter shed: in this state no class below a shed one gets in
        shed = [q for q in mix if a.shed[q]]
        for q in range(2, min(shed, default=3) - 1, -1):
            assert not isinstance(a.acquire_or_enqueue(q), Ticket), (limit, mix, q)


def test_after_a_high_request_is_shed_low_priority_waits_one_interval() -> None:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(1, 100, 4, max_queue_wait=0.01, interval=0.05, clock=clk,
                             learn=False)
    held = [a.acquire_or_enqueue("high") for _ in range(4)]
    w = a.acquire_or_enqueue("high")
    assert isinstance(w, Waiter)
    clk.t = 0.01
    assert a.expire() == 1 and a.shed[0] == 1  # no slot came free in time
    for t in held[:3]:
        assert isinstance(t, Ticket)
        t.release()
    assert a.acquire_or_enqueue("low") is not None and a.admitted[2] == 0  # queued, not in
    assert isinstance(a.acquire_or_enqueue("normal"), Ticket)
    clk.t = 0.061  # one interval after the shed (the queued low one has expired)
    assert a.expire() == 1
    assert isinstance(a.acquire_or_enqueue("low"), Ticket)
