"""The CPU and memory sample schedule (pulsegate.sampling)."""

from __future__ import annotations

import pytest

from pulsegate.sampling import MAX_GAP, Sampler


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
    got = schedule(Sampler(3, 5, 0.0, StepClock(0.0), lambda: 1.0), 31)
    assert got == [(i % 3 == 0, i % 5 == 0) for i in range(31)]


def test_an_interval_of_zero_turns_a_sample_off_and_the_gap_stays_bounded() -> None:
    sampler = Sampler(0, 0, 0.0, StepClock(0.0), lambda: 1.0)
    asked = [t for t in range(300) if t % MAX_GAP == 0]
    assert [sampler.take(t)[2] for t in asked] == [t + MAX_GAP for t in asked]
    assert schedule(Sampler(0, 4, 0.0, StepClock(0.0), lambda: 1.0), 8) == [
        (False, i % 4 == 0) for i in range(8)]


@pytest.mark.parametrize(("cost", "budget", "gap"), [
    (1e-6, 0.25e-6, 8),     # 2 µs per sample over 0.25 µs per request: every 8th
    (1e-4, 0.25e-6, 800),   # a big heap
    (1e-8, 0.25e-6, 4),     # cheap: the configured interval
    (1e-4, 0.0, 4),         # no budget: fixed
])
def test_a_dear_block_count_stretches_the_memory_interval(
        cost: float, budget: float, gap: int) -> None:
    sampler = Sampler(0, 4, budget, StepClock(cost), lambda: 1.0)
    assert sampler.take(0)[1] is not None  # request 0 reads it
    assert sampler.mem_due == pytest.approx(gap, abs=1)
