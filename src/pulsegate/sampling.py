"""Which requests measure their CPU time and memory: the first of every N, for each;
and the wall clock, read once a second.

Both reads cost more than the rest of a request's measuring: the thread CPU clock is a
system call (~0.3 µs on bare metal, ~0.65 µs in a VM, more under gVisor-style sandboxes,
plus the cache and TLB refill it leaves behind), and ``sys.getallocatedblocks()`` walks
every pool of the allocator, so its cost grows with the heap (~0.4 µs in a small
process, ~160 µs at 5 M objects). An endpoint's CPU level, or a leak, shows just as well
on one request in N; the requests in between pay one comparison in the engine
(``tick >= next``: the request counter is shared by threads without a lock, so the
request due may go by unseen).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

#: The most requests between two calls to :meth:`Sampler.take`, also when nothing is
#: sampled: the engine starts its scheduler's thread there.
MAX_GAP = 64
#: How much one sample may stretch an interval, at most: a read slowed once by a
#: preemption does not turn sampling off for thousands of requests, and a read that is
#: really dear reaches its interval within a few samples.
MAX_STRETCH = 4
#: The due request number of a sample turned off (no request number reaches it).
NEVER = sys.maxsize


def stretched(every: int, last: int, cost: float, budget: float) -> int:
    r"""The next interval for a read that took ``cost`` seconds: the configured
    ``every``, or :math:`\lceil 2c/b \rceil` when two such reads per sampled request
    would average more than the budget :math:`b` per request -- but at most
    ``MAX_STRETCH`` times the ``last`` interval."""
    if budget and 2.0 * cost > every * budget:
        want = math.ceil(2.0 * cost / budget)
        cap = MAX_STRETCH * last
        return want if want < cap else cap
    return every


class Sampler:
    r"""The schedule of CPU and memory samples, by request number.

    Each is read on request 0, and each read is timed: the next one comes
    :math:`\max(n, \lceil 2c/b \rceil)` requests later, for a configured interval
    :math:`n` (``cpu_every``, ``mem_every``), a read that took :math:`c` seconds and a
    budget of :math:`b` seconds per request (``cpu_budget``, ``mem_budget``): the two
    reads of a sampled request (here and at its end) then average at most :math:`b`
    per request, however dear the system call is on this machine or however large the
    heap grows (see :func:`stretched`). A budget of 0 keeps :math:`n` fixed; an interval
    of 0 turns that sample off.
    """

    __slots__ = ("clock", "cpu_budget", "cpu_clock", "cpu_due", "cpu_every", "cpu_gap",
                 "mem_budget", "mem_due", "mem_every", "mem_gap", "next_take", "requests")

    def __init__(self, cpu_every: int, mem_every: int, cpu_budget: float,
                 mem_budget: float, clock: Callable[[], float],
                 cpu_clock: Callable[[], float]) -> None:
        self.cpu_every = cpu_every
        self.mem_every = mem_every
        self.cpu_budget = cpu_budget
        self.mem_budget = mem_budget
        self.clock = clock
        self.cpu_clock = cpu_clock
        #: The next request number that reads each (NEVER: turned off).
        self.cpu_due = 0 if cpu_every else NEVER
        self.mem_due = 0 if mem_every else NEVER
        #: The interval each is read at now (its configured one, or stretched).
        self.cpu_gap = cpu_every
        self.mem_gap = mem_every
        #: Requests started, and the number of the next one to call :meth:`take` for
        #: (the engine counts and compares; the first request takes).
        self.requests = 0
        self.next_take = 0

    def take(self, tick: int) -> tuple[float | None, int | None, int]:
        """The CPU clock and the block count for request number ``tick`` (each None
        unless due), and the number of the next request to call this again."""
        cpu0 = mem0 = None
        cpu_due, mem_due = self.cpu_due, self.mem_due
        clock = self.clock
        # ``>=``, not ``==``: threads count requests without a lock, so the request due
        # may have gone by while another thread sampled; scheduling from it would name a
        # number no request meets again
        if tick >= cpu_due:
            cpu_clock = self.cpu_clock
            t0 = clock()
            cpu0 = cpu_clock()
            self.cpu_gap = gap = stretched(self.cpu_every, self.cpu_gap, clock() - t0,
                                           self.cpu_budget)
            self.cpu_due = cpu_due = tick + gap
        if tick >= mem_due:
            t0 = clock()
            mem0 = sys.getallocatedblocks()
            self.mem_gap = gap = stretched(self.mem_every, self.mem_gap, clock() - t0,
                                           self.mem_budget)
            self.mem_due = mem_due = tick + gap
        nxt = tick + MAX_GAP
        if cpu_due < nxt:
            nxt = cpu_due
        if mem_due < nxt:
            nxt = mem_due
        return cpu0, mem0, nxt


class WallOffset:
    """Epoch seconds for a time on a monotonic clock: ``clock time + offset``, the offset
    re-read when the clock passes ``due``, once per second of clock time rather than on
    every request (``time.time()`` costs as much as a quarter of the rest of starting a
    request). A wall-clock step (NTP, a resumed VM) shows within that second."""

    __slots__ = ("due", "offset", "wall")

    def __init__(self, wall: Callable[[], float]) -> None:
        self.wall = wall
        self.offset = 0.0
        self.due = -math.inf

    def sync(self, now: float) -> None:
        """Re-read the wall clock at clock time ``now``."""
        wall = self.wall
        self.offset = wall() - now
        self.due = now + 1.0

    def at(self, now: float) -> float:
        """The offset at clock time ``now`` (re-read if due)."""
        if now >= self.due:
            self.sync(now)
        return self.offset
