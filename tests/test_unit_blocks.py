"""Attack probes of the block counts' budget (:mod:`pulsegate.unit_blocks`): the clocks
a count is timed with are the process's, and a loaded process stalls a thread at any
instruction."""

from __future__ import annotations

import math

from pulsegate.unit_blocks import MEMORY_CREDIT_CAP, MEMORY_SHARE, BlockBudget


class StallingClock:
    """A clock that advances ``step`` s a read; when armed (``stall``), its second read
    from then on comes ``stall`` s later: the thread preempted between a count's two
    reads (load, the GIL, a page fault)."""

    def __init__(self, step: float = 5e-6) -> None:
        self.t = 0.0
        self.step = step
        self.stall = 0.0
        self.reads = 0

    def arm(self, stall: float) -> None:
        self.stall, self.reads = stall, 0

    def __call__(self) -> float:
        self.reads += 1
        self.t += self.step
        if self.reads == 2 and self.stall:
            self.t += self.stall
            self.stall = 0.0
        return self.t


def counted(budget: BlockBudget, runs: int, duration: float) -> int:
    """How many of ``runs`` runs of ``duration`` s were counted."""
    n = 0
    for _ in range(runs):
        n += budget.count() is not None
        budget.earn(duration)
    return n


def test_one_stalled_read_does_not_stop_the_counts_for_good() -> None:
    """A count whose two clock reads are 200 ms apart (a stall, not the count: a full
    garbage collection of a large heap, swapping) teaches a cost past what the credit
    can ever hold (MEMORY_CREDIT_CAP): the counts must come back and keep to their
    share once reads cost microseconds again."""
    clock = StallingClock()
    budget = BlockBudget(clock, enabled=True)
    assert counted(budget, 100, 0.05) == 100  # 50 ms jobs: counted every time
    clock.arm(0.2)
    assert budget.count() is not None
    counted(budget, 1_000, 0.05)  # the stall's 0.4 s paid back: 700 runs' credit
    assert counted(budget, 1_000, 0.05) == 1_000


def test_the_counts_keep_to_their_share_whatever_the_stalls() -> None:
    """Every 50th count stalls 30 ms: the counts' time stays within MEMORY_SHARE of the
    runs' time plus the credit's cap (stalls included, as the budget cannot tell)."""
    clock = StallingClock()
    budget = BlockBudget(clock, enabled=True)
    spent, measured, n = 0.0, 0.0, 0
    for i in range(20_000):
        if i % 50 == 0:
            clock.arm(0.03)
        before = clock.t
        if budget.count() is not None:
            n += 1
            spent += 2.0 * (clock.t - before)
        budget.earn(0.001)
        measured += 0.001
    assert n > 0 and math.isfinite(budget.credit)
    assert spent <= MEMORY_SHARE * measured + 2 * MEMORY_CREDIT_CAP + 0.06, (spent, measured)
