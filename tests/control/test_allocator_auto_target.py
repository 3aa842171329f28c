"""The allocator's auto target: ``target = min(configured target, 1.5 x baseline)``, the
baseline learnt from unqueued windows and re-anchored when cutting the limit does not
lower latency (a slow dependency, not a queue)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fakeclock import FakeClock
from pulsegate.control.allocator import ConcurrencyAllocator, Ticket
from pulsegate.control.autotarget import LatencyBaseline
from pulsegate.control.qpolicy import QPolicy


def make(auto: bool = True) -> tuple[ConcurrencyAllocator, FakeClock]:
    clk = FakeClock(0.0)
    a = ConcurrencyAllocator(2, 100, 20, target_latency=0.05, interval=0.1, min_samples=10,
                             max_queue_wait=0.0, clock=clk, policy=QPolicy(epsilon=0.0),
                             auto_target=auto)
    return a, clk


def steady_window(a: ConcurrencyAllocator, clk: FakeClock, inflight: int, latency: float) -> None:
    """``inflight`` at a time, nothing queued or shed."""
    for _ in range(4):
        tickets = [a.acquire_or_enqueue("normal") for _ in range(inflight)]
        clk.t += 0.03
        for t in tickets:
            assert isinstance(t, Ticket)
            t.release(latency)


def quiet_window(a: ConcurrencyAllocator, clk: FakeClock, latency: float) -> None:
    """Four at a time (under half the limit), nothing shed: an unqueued window."""
    steady_window(a, clk, 4, latency)


def busy_window(a: ConcurrencyAllocator, clk: FakeClock, latency: Callable[[int], float]) -> None:
    """The limit full and one request shed: demand; latency as a function of the limit."""
    for _ in range(4):
        tickets = [a.acquire_or_enqueue("high") for _ in range(a.limit)]
        assert a.acquire_or_enqueue("high") is None  # shed: there is demand
        clk.t += 0.03
        for t in tickets:
            assert isinstance(t, Ticket)
            t.release(latency(a.limit))


def test_target_follows_twice_the_unqueued_latency_under_the_configured_cap() -> None:
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    assert a.baseline == pytest.approx(0.010)
    assert a.target == pytest.approx(0.015)
    for _ in range(30):
        quiet_window(a, clk, 0.040)
    assert a.target == pytest.approx(0.05)  # 1.5 x 40 ms would exceed the configured 50 ms


def test_latencies_measured_as_zero_leave_a_target_the_allocator_can_divide_by() -> None:
    """A coarse clock (15.6 ms ticks on Windows) measures fast requests as 0: the
    baseline learnt is 0, the target stays at its 1 ms floor, and the windows after
    it still step the limit (before: the target was 0 and every later release raised
    ZeroDivisionError into the gate's fault counter, the limit frozen)."""
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.0)
    assert a.baseline == 0.0 and a.target == pytest.approx(0.001)
    for _ in range(6):
        busy_window(a, clk, lambda limit: 0.0)  # raises on the old target
    assert a.target == pytest.approx(0.001)


def test_a_steady_load_over_half_the_limit_with_calm_latency_learns_the_baseline() -> None:
    """64 workers at 0.8x load keep ~51 requests in flight: never under half the limit.
    With nothing waiting and latency well under the target the window is unqueued all
    the same; before, no baseline was ever learnt and the target stayed at the cap."""
    a, clk = make()
    for _ in range(6):
        steady_window(a, clk, 14, 0.010)
        assert a.last_window["utilisation"] >= 0.5
    assert a.baseline == pytest.approx(0.010)
    assert a.target == pytest.approx(0.015)


def test_a_steady_load_near_the_target_teaches_nothing() -> None:
    a, clk = make()
    for _ in range(6):
        steady_window(a, clk, 14, 0.042)  # 0.84 x the 50 ms cap: may be queueing
    assert a.baseline is None and a.target == 0.05


def test_without_auto_target_the_configured_target_stays() -> None:
    a, clk = make(auto=False)
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    assert a.target == 0.05 and a.baseline is None


def test_a_slow_dependency_re_anchors_the_baseline_instead_of_collapsing_the_limit() -> None:
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    for _ in range(15):  # 25 ms whatever the limit: cutting it does not help
        busy_window(a, clk, lambda limit: 0.025)
    assert a.baseline == pytest.approx(0.025)
    assert a.target == pytest.approx(0.0375)
    assert a.limit >= 10  # stopped cutting once the latency was understood


def test_queueing_latency_does_not_move_the_baseline() -> None:
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    for _ in range(15):  # latency in proportion to the limit: a queue, which cuts fix
        busy_window(a, clk, lambda limit: 0.0015 * limit)
    assert a.baseline == pytest.approx(0.010)
    assert a.limit <= 14


def test_the_baseline_survives_a_restart_and_bad_values_are_ignored() -> None:
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    b, _ = make()
    b.load_state(a.state())
    assert b.baseline == pytest.approx(0.010) and b.target == pytest.approx(0.015)
    c, _ = make()
    c.load_state(a.state() | {"baseline": float("nan")})
    assert c.baseline is None and c.target == 0.05


def test_a_slowdown_that_starts_with_a_long_queue_still_re_anchors() -> None:
    """25 ms of service on 16 workers, entered with 40 in flight: the first windows are
    queued (62 ms), the later ones, below 16, are not (25 ms). Compared with the most
    loaded of the recent windows, not the slowest of the whole episode, the unqueued
    25 ms is recognised and the limit stops falling."""
    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    a.set_limit(40)
    for _ in range(40):
        busy_window(a, clk, lambda limit: max(0.025, 0.025 * limit / 16))
    assert a.baseline == pytest.approx(0.025)
    assert a.limit >= 10



def test_a_queue_draining_after_a_cut_is_not_taken_for_a_slow_dependency() -> None:
    """Pure queueing: each request waits in proportion to the requests in flight when
    it was admitted. When the learner cuts the limit, the completions still carry the
    deeper queue they joined while in-flight has already fallen; paired with the
    in-flight each request saw, that latency is recognised as queueing."""
    from collections import deque

    a, clk = make()
    for _ in range(6):
        quiet_window(a, clk, 0.010)
    a.set_limit(40)
    held: deque[tuple[Ticket, int]] = deque()  # (ticket, in flight when admitted)
    for _ in range(600):  # 6 s: a completion every 10 ms, arrivals fill every free slot
        while True:
            t = a.acquire_or_enqueue("normal")
            if not isinstance(t, Ticket):
                break
            held.append((t, a.inflight))
        clk.t += 0.010
        if held:
            done, ahead = held.popleft()
            done.release(0.0008 * ahead)  # 0.8 ms per request in flight when it came
    assert a.baseline == pytest.approx(0.010)
    # steered to the 15 ms target: ~19 in flight (the limit less normal's 10 % reserve)
    assert a.limit <= 22



def test_queueing_left_in_a_re_anchored_window_drains_out_of_the_baseline() -> None:
    """A dependency slows to 25 ms while 40 requests are in flight (60 ms). The limit is
    cut; the window at 20 in flight still holds part of the queue (45 ms) but no longer
    falls with in-flight, so it re-anchors the baseline -- too high. The windows after it
    answer in 25 ms, and the baseline follows them down instead of keeping the queueing
    it was anchored with (without that, the target stays 1.5 x 45 ms and the limit high)."""
    b = LatencyBaseline(cap=0.100)
    b.window(0.010, lat_ratio=0.5, mean_inflight=4.0, util=0.2, demand=False)
    for _ in range(3):
        b.window(0.060, lat_ratio=4.0, mean_inflight=40.0, util=0.9, demand=True)
    b.window(0.045, lat_ratio=3.0, mean_inflight=20.0, util=0.9, demand=True)
    assert b.baseline == pytest.approx(0.045)
    for _ in range(8):
        b.window(0.025, lat_ratio=0.9, mean_inflight=16.0, util=0.9, demand=True)
    assert b.baseline == pytest.approx(0.025, rel=0.01)
    assert b.target() == pytest.approx(0.0375, rel=0.01)


def test_before_any_re_anchor_a_fast_overloaded_window_does_not_lower_the_baseline() -> None:
    """Without a re-anchor the baseline comes from unqueued windows only: a lucky fast
    window under overload (heavy-tailed service) does not drag it down."""
    b = LatencyBaseline(cap=0.100)
    b.window(0.010, lat_ratio=0.5, mean_inflight=4.0, util=0.2, demand=False)
    b.window(0.006, lat_ratio=0.4, mean_inflight=16.0, util=0.9, demand=True)
    assert b.baseline == pytest.approx(0.010)
