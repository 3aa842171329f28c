"""The one fake clock of the test suite.

Pass it wherever pulsegate takes a ``clock`` (monotonic seconds) or a ``cpu_clock``; a
test moves time by assigning or adding to ``t``:

>>> clock = FakeClock(100.0)
>>> clock.t += 2.5
>>> clock()
102.5
"""

from __future__ import annotations


class FakeClock:
    """A clock that stands still until the test moves ``t``."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
