"""Run a function on many threads at once, switching between them as often as the
interpreter can: races that a normal switch interval (5 ms) rarely shows."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def in_threads(work: Callable[[int], None], n: int = 8) -> None:
    """``work(i)`` on ``n`` threads (i = 0 .. n-1), a thread switch every microsecond;
    returns once all have ended."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
