"""The allocator's class caps: how many of the limit's slots each priority class may fill.

With the limit ``L`` (whole slots) and a class's share ``s`` (in per cent)::

    cap(high)  = L
    cap(class) = max(1, L - floor(L x (100 - s) / 100))

The slots above a lower class's cap (its *reserve*) are kept for the classes above it,
so a burst of high-priority work finds a slot without waiting for low-priority work to
finish. The reserve is what the share asks for **rounded down**: a class never loses a
slot to rounding, only whole slots its share gives away. Until 2026-12-07 the cap itself
was rounded down (``int(L x share)``), so at ``L`` = 4 normal traffic could fill 3 slots
(a 25 % reserve for a 10 % share) and low traffic 3 as well: with the limit at its floor
a worker idled whenever no high-priority request was in flight (``allocator_sim.py``,
4-worker slowdown, 75-79 % of capacity where a constant limit of 5 keeps ~91 %).

Properties (``tests/control/test_allocator_shares.py``, every ``L`` in 1-200, both share
sets): ``L >= cap(high) >= cap(normal) >= cap(low) >= 1`` -- a class is admitted in a
state only if every class above it would be too, so priority order is never inverted;
``cap >= s x L`` -- nothing lost to rounding; ``cap < L`` whenever the share gives away at
least one whole slot (``(100 - s) x L >= 100``) -- the reserve still exists.

>>> class_caps(4, hot=False), class_caps(4, hot=True), class_caps(20, hot=True)
((4, 4, 3), (4, 4, 2), (20, 16, 10))
"""

from __future__ import annotations

#: per-cent shares of (high, normal, low)
SHARES = (100, 90, 75)
#: shares once latency reached 0.8 x target: lower classes give way before the limit
SHARES_HOT = (100, 80, 50)


def class_caps(limit: int, hot: bool) -> tuple[int, int, int]:
    """Slots each class (high, normal, low) may fill at the whole-slot ``limit``."""
    lim = max(1, limit)
    shares = SHARES_HOT if hot else SHARES
    high, normal, low = (max(1, lim - lim * (100 - s) // 100) for s in shares)
    return high, normal, low
