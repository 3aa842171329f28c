"""The budget of a unit run's memory measure: the allocated-block count
(``sys.getallocatedblocks()``) at its start and end.

Counting blocks walks the interpreter's allocator -- from about 1 µs in a small process
to 0.1-0.3 ms in a large one -- so it is budgeted: at most :data:`MEMORY_SHARE` (1 %) of
the units' measured time goes to it. Each run measured here earns 1 % of its duration as
credit (capped at :data:`MEMORY_CREDIT_CAP` s; a run measured elsewhere -- a queue wait
read off a message, a call timed by a client's hook -- earns none: it is no time this
process spent) and a run is counted when the credit covers the two counts' learnt cost
(an exponential average, weight 0.2, of the timed reads, at most the cap): a job of 50 ms or more is
counted every time even in a large process, a burst of tiny ones one time in many.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final

__all__ = ["MEMORY_CREDIT_CAP", "MEMORY_SHARE", "BlockBudget"]

#: Share of the units' measured time the block counts may take.
MEMORY_SHARE: Final = 0.01
#: Most credit (s) the block counts may save up while nothing needs them.
MEMORY_CREDIT_CAP: Final = 0.05


class BlockBudget:
    """``units.memory``: :meth:`count` at a run's start, :meth:`earn` at its end
    (``enabled``: the gate's ``measure_memory``)."""

    __slots__ = ("clock", "cost", "credit", "enabled")

    def __init__(self, clock: Callable[[], float], enabled: bool) -> None:
        self.clock = clock
        self.enabled = enabled
        #: seconds of block counting still allowed, and what the two counts of one run
        #: cost (learnt)
        self.credit = MEMORY_CREDIT_CAP
        self.cost = 0.0

    def count(self) -> int | None:
        """The allocated-block count a run starts from, when the budget allows; None
        when it does not (or memory is not measured)."""
        if not self.enabled or self.credit < self.cost:
            return None
        clock = self.clock
        t0 = clock()
        mem0 = sys.getallocatedblocks()
        read = 2.0 * (clock() - t0)  # this read, and the one at the end
        cost = self.cost
        cost = read if not cost else cost + 0.2 * (read - cost)
        # at most the credit's cap: a cost past it -- taught by a stall between the two
        # reads (a full collection of a large heap), not by the count -- could never be
        # paid again, and would stop the counts for good
        self.cost = cost if cost < MEMORY_CREDIT_CAP else MEMORY_CREDIT_CAP
        self.credit -= read
        return mem0

    def earn(self, duration: float) -> None:
        """A run of ``duration`` s ended: :data:`MEMORY_SHARE` of it is credit."""
        credit = self.credit + MEMORY_SHARE * duration
        self.credit = credit if credit < MEMORY_CREDIT_CAP else MEMORY_CREDIT_CAP
