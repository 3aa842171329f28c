"""The ``x-ml-*`` header values, formatted once per distinct value rather than once per
request: float formatting is the costliest thing a request's headers do (~150 ns each),
and the values repeat -- a confidence is one of 101 integers, a score one of 1001
thousandths, a forecast drifts by tenths of a millisecond.

Rounding is half-up on the value as given (``"%.1f"`` would round half-even on its
binary expansion); the two differ only on exact ties, in the last digit shown.
"""

from __future__ import annotations

import math

from pulsegate.bounded import BoundedLRU

#: Rounds these values: ``whole(x + 0.5)``. ``math.floor`` of a float is a plain C call,
#: about a quarter of what ``int(x)`` costs (a type call that parses its arguments); the
#: values are never negative, where floor and int agree.
whole = math.floor

#: ``CONFIDENCE[whole(c + 0.5)]`` is a 0..100 confidence ``c`` rounded to an integer.
CONFIDENCE = tuple(str(i) for i in range(101))
#: ``SCORE[whole(s * 1000 + 0.5)]`` is an anomaly score ``s`` in [0, 1] with three decimals.
SCORE = tuple(f"{i // 1000}.{i % 1000:03d}" for i in range(1001))

#: ``TENTHS[whole(ms * 10 + 0.5)]`` is ``ms`` with one decimal, for the values seen so
#: far (:func:`tenths` reads it, and fills it on a miss).
#: At most 4096 distinct values, the oldest made going first: memory stays bounded.
TENTHS: BoundedLRU[int, str] = BoundedLRU(4096)


def tenths(value: float) -> str:
    """A non-negative number of milliseconds with one decimal."""
    t = whole(value * 10.0 + 0.5)
    text = TENTHS.get(t)
    if text is None:
        text = f"{t // 10}.{t % 10}"
        TENTHS.put(t, text)
    return text
