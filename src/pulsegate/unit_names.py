"""Which names of one kind of unit keep a model: at most ``size``; the others fold.

A kept name holds a *slot* with a decayed count: +1 per use, and every count halved
each ``period`` = 8 x ``size`` uses of the kind (a name used u times a period holds
between u and 2u; one no longer used falls to 0). While a slot is free a new name
takes it. Once all are taken, a new name's uses are counted in a count-min sketch --
4 rows of ``width`` one-byte counters, ``width`` the power of two >= 32 x ``size``,
indexed by the process's keyed string hash, halved with the counts -- whose
estimate ``seen`` (the least of the name's 4 counters) is never below the name's own
decayed count. A hand moving round the slots looks at the next :data:`LOOK` of them;
the least counted, the *victim*, gives its slot up when

    seen >= ADMIT_AT (2)  and  seen > count(victim)

and its model is dropped (``drop(victim)``). So a name used once and never again
gives its slot to a name used twice in a period; a spray of one-shot names fills only
free slots (their ``seen`` is 1 unless all 4 of a name's counters were already hit
by others) and a name used a few times a period keeps its slot against it; a name
used more often than a kept one takes that one's slot when the hand comes by.

Per use O(1): a dictionary read, and when the name has no slot 4 counters and
:data:`LOOK` slots; the halving, O(size + width) in C once a period, is O(1)
amortised. Memory: ``size`` names and counts, and once the slots are full the
sketch, 4 x ``width`` bytes (32 KiB at the default 200; ~160 bytes a slot, about 3 %
of the endpoint model each name holds). Nothing grows with the names seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

#: Slots the hand looks at for a victim per new name refused a free slot.
LOOK: Final = 4
#: Least estimated count that can win a taken slot (a name seen once never does).
ADMIT_AT: Final = 2
#: Rows of the sketch (hashes per name).
ROWS: Final = 4
#: Most a sketch counter holds.
SATURATED: Final = 255
_HALF: Final = bytes(i >> 1 for i in range(256))


class NameSlots:
    """The kept names of one kind (see the module): ``use(name)`` says whether
    ``name`` has a slot; ``drop(name)`` is called with each name that lost one."""

    __slots__ = ("counts", "drop", "evicted", "hand", "lock", "period", "size", "sketch",
                 "slots", "uses", "width")

    def __init__(self, size: int, drop: Callable[[str], None]) -> None:
        self.size = size
        self.drop = drop
        #: the kept names, in slot order, and each one's decayed count
        self.slots: list[str] = []
        self.counts: dict[str, int] = {}
        self.hand = 0
        self.uses = 0
        self.period = 8 * size
        self.width = 1 << (32 * size - 1).bit_length()
        #: made when the slots are full (a kind that never fills them never has one)
        self.sketch: bytearray | None = None
        #: names that lost their slot
        self.evicted = 0
        #: one use at a time: jobs and outbound calls name their units from many threads,
        #: and a name taking a slot while another thread counts the victim would leave
        #: a count without a slot (never evicted again) or a KeyError
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, name: str) -> bool:
        return name in self.counts

    def use(self, name: str) -> bool:
        """One use of ``name``: True when it holds a slot (it may just have won one)."""
        with self.lock:
            won, victim = self._use(name)
        if victim is not None:
            self.drop(victim)  # (outside the lock: it drops a model elsewhere)
        return won

    def _use(self, name: str) -> tuple[bool, str | None]:
        self.uses += 1
        if self.uses >= self.period:
            self.age()
        counts = self.counts
        count = counts.get(name)
        if count is not None:
            counts[name] = count + 1
            return True, None
        slots = self.slots
        if len(slots) < self.size:
            slots.append(name)
            counts[name] = 1
            return True, None
        seen = self.seen(name)
        at = self.victim()
        victim = slots[at]
        if seen < ADMIT_AT or seen <= counts[victim]:
            return False, None
        del counts[victim]
        slots[at] = name
        counts[name] = seen
        self.evicted += 1
        return True, victim

    def seen(self, name: str) -> int:
        """Count one use of a name without a slot; its estimate, the least of its
        :data:`ROWS` counters (row r's index: ``(h + r * step) mod width``, ``h`` the
        name's hash and ``step`` its high half, odd)."""
        width = self.width
        sketch = self.sketch
        if sketch is None:
            sketch = self.sketch = bytearray(ROWS * width)
        h = hash(name)
        step = (h >> 32) | 1
        mask = width - 1
        seen = SATURATED
        for row in range(ROWS):
            i = row * width + ((h + row * step) & mask)
            count = sketch[i]
            if count < SATURATED:
                count += 1
                sketch[i] = count
            if count < seen:
                seen = count
        return seen

    def victim(self) -> int:
        """The slot of the least counted of the :data:`LOOK` names from the hand
        on (the hand moves past them)."""
        slots, counts, n = self.slots, self.counts, len(self.slots)
        hand = self.hand
        best, least = hand, counts[slots[hand]]
        for i in range(hand + 1, hand + min(LOOK, n)):
            count = counts[slots[i % n]]
            if count < least:
                best, least = i % n, count
        self.hand = (hand + LOOK) % n
        return best

    def age(self) -> None:
        """Halve every count, kept and sketched (once a period)."""
        self.uses = 0
        self.counts = {name: count >> 1 for name, count in self.counts.items()}
        if self.sketch is not None:
            self.sketch = self.sketch.translate(_HALF)
