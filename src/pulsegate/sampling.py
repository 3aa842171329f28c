"""Which requests measure their CPU time and memory: the first of every N, for each.

Both reads cost more than the rest of a request's measuring: the thread CPU clock is a
system call (~0.3-0.7 µs), and ``sys.getallocatedblocks()`` walks every pool of the
allocator, so its cost grows with the heap (~0.4 µs in a small process, ~160 µs at
5 M objects). An endpoint's CPU level, or a leak, shows just as well on one request in
N; the requests in between pay one comparison in the engine (``tick == next``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

#: The most requests between two calls to :meth:`Sampler.take`, also when nothing is
#: sampled: the engine starts its scheduler's thread there.
MAX_GAP = 64


class Sampler:
    r"""The schedule of CPU and memory samples, by request number.

    CPU time is read on request :math:`0, n_c, 2n_c, \dots` (``cpu_every``). Memory is
    read on request 0, then each read is timed, and the next one comes
    :math:`\max(n_m, \lceil 2c/b \rceil)` requests later, for a read that took
    :math:`c` seconds and a budget of :math:`b` seconds per request: the two reads of
    a sampled request (here and at its end) then average at most :math:`b` per request
    however large the heap grows. ``budget`` 0 keeps :math:`n_m` fixed. An interval of
    0 turns that sample off.
    """

    __slots__ = ("budget", "clock", "cpu_clock", "cpu_due", "cpu_every", "mem_due",
                 "mem_every")

    def __init__(self, cpu_every: int, mem_every: int, budget: float,
                 clock: Callable[[], float], cpu_clock: Callable[[], float]) -> None:
        self.cpu_every = cpu_every
        self.mem_every = mem_every
        self.budget = budget
        self.clock = clock
        self.cpu_clock = cpu_clock
        #: The next request number that reads each (-1: never).
        self.cpu_due = 0 if cpu_every else -1
        self.mem_due = 0 if mem_every else -1

    def take(self, tick: int) -> tuple[float | None, int | None, int]:
        """The CPU clock and the block count for request number ``tick`` (each None
        unless due), and the number of the next request to call this again."""
        cpu0 = mem0 = None
        cpu_due, mem_due = self.cpu_due, self.mem_due
        if tick == cpu_due:
            cpu_clock = self.cpu_clock
            cpu0 = cpu_clock()
            self.cpu_due = cpu_due = tick + self.cpu_every
        if tick == mem_due:
            clock = self.clock
            t0 = clock()
            mem0 = sys.getallocatedblocks()
            cost = clock() - t0
            every = self.mem_every
            if self.budget and 2.0 * cost > every * self.budget:
                every = math.ceil(2.0 * cost / self.budget)
            self.mem_due = mem_due = tick + every
        nxt = tick + MAX_GAP
        if 0 <= cpu_due < nxt:
            nxt = cpu_due
        if 0 <= mem_due < nxt:
            nxt = mem_due
        return cpu0, mem0, nxt
