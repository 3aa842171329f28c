"""The CPU and memory sample schedule (pulsegate.sampling)."""

from __future__ import annotations

import pytest

from pulsegate.sampling import MAX_GAP, MAX_STRETCH, Sampler


class StepClock:
    """Advances by ``step`` on every read after the first of a pair."""

    def __init__(self, step: float) -> None:
        self.t, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.t += self.step
        return self.t


def schedule(sampler: Sampler, n: int) -> list[tuple[bool, bool]]:
    out, nxt = [], 0
    for tick in range(n):
        if tick == nxt:
            cpu0, mem0, nxt = sampler.take(tick)
            out.append((cpu0 is not None, mem0 is not None))
        else:
            out.append((False, False))
    return out


def test_each_is_read_on_the_first_request_of_every_n() -> None:
    got = schedule(Sampler(3, 5, 0.0, 0.0, StepClock(0.0), lambda: 1.0), 31)
    assert got == [(i % 3 == 0, i % 5 == 0) for i in range(31)]


def test_an_interval_of_zero_turns_a_sample_off_and_the_gap_stays_bounded() -> None:
    sampler = Sampler(0, 0, 0.0, 0.0, StepClock(0.0), lambda: 1.0)
    asked = [t for t in range(300) if t % MAX_GAP == 0]
    assert [sampler.take(t)[2] for t in asked] == [t + MAX_GAP for t in asked]
    assert schedule(Sampler(0, 4, 0.0, 0.0, StepClock(0.0), lambda: 1.0), 8) == [
        (False, i % 4 == 0) for i in range(8)]


@pytest.mark.parametrize(("cost", "budget", "gap"), [
    (1e-6, 0.25e-6, 8),     # 2 µs per sample over 0.25 µs per request: every 8th
    (1e-5, 0.25e-6, 16),    # dearer still: stretched at most MAX_STRETCH times at once
    (1e-8, 0.25e-6, 4),     # cheap: the configured interval
    (1e-4, 0.0, 4),         # no budget: fixed
])
def test_a_dear_block_count_stretches_the_memory_interval(
        cost: float, budget: float, gap: int) -> None:
    sampler = Sampler(0, 4, 0.0, budget, StepClock(cost), lambda: 1.0)
    assert sampler.take(0)[1] is not None  # request 0 reads it
    assert sampler.mem_due == pytest.approx(gap, abs=1)


def test_a_dear_cpu_clock_stretches_the_cpu_interval_the_same_way() -> None:
    # 0.65 µs per read (a VM's system call), 0.1 µs per request: every 13th, not every 4th
    sampler = Sampler(4, 0, 0.1e-6, 0.0, StepClock(0.65e-6), lambda: 1.0)
    cpu0, mem0, nxt = sampler.take(0)
    assert (cpu0, mem0) == (1.0, None)
    assert nxt == pytest.approx(13, abs=1)
    # cheap reads (or no budget) keep the configured interval
    assert Sampler(4, 0, 0.1e-6, 0.0, StepClock(0.1e-6), lambda: 1.0).take(0)[2] == 4
    assert Sampler(4, 0, 0.0, 0.0, StepClock(1e-3), lambda: 1.0).take(0)[2] == 4


def test_a_stretch_grows_by_steps_and_a_cheap_read_undoes_it() -> None:
    clock = StepClock(1e-4)  # 100 µs per read: 800 requests apart at 0.25 µs
    sampler = Sampler(0, 4, 0.0, 0.25e-6, clock, lambda: 1.0)
    gaps = []
    for _ in range(5):
        assert sampler.take(sampler.mem_due)[1] is not None
        gaps.append(sampler.mem_gap)
    assert gaps == [4 * MAX_STRETCH, 4 * MAX_STRETCH ** 2, 4 * MAX_STRETCH ** 3, 800, 800]
    clock.step = 1e-9  # one slow read (a preemption) is forgotten at the next sample
    sampler.take(sampler.mem_due)
    assert sampler.mem_gap == 4


def test_a_take_for_a_request_past_the_one_due_samples_and_looks_ahead() -> None:
    """Attack probe (hsec4): threads count requests without a lock, so the request
    numbered ``next_take`` may have gone by while another thread sampled (a burst of
    requests on a threaded server). A take for a later request reads what was due and
    schedules the next one after it -- never a number already gone by, which no request
    would meet again: the samples, and the scheduler's start, would stop for good."""
    sampler = Sampler(4, 4, 0.0, 0.0, StepClock(0.0), lambda: 1.0)
    assert sampler.take(0)[2] == 4
    cpu0, mem0, nxt = sampler.take(6)  # requests 4 and 5 went by meanwhile
    assert cpu0 is not None and mem0 is not None and nxt == 10
    off = Sampler(0, 0, 0.0, 0.0, StepClock(0.0), lambda: 1.0)
    assert off.take(6) == (None, None, 6 + MAX_GAP)  # a sample turned off stays off
