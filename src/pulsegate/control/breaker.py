"""Circuit breaker around a remote store (Redis): closed -> open -> half-open.

* closed: calls go through; ``failure_threshold`` consecutive failures open it.
* open: calls are refused at once (the caller uses its local fallback) for
  ``recovery_timeout`` seconds, so a dead Redis costs nothing per request -- no connect
  timeout is paid on the request path while it is down.
* half-open: after the timeout one trial call is let through; success closes the
  breaker, failure re-opens it for another full timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    __slots__ = ("_lock", "_trial", "clock", "failure_threshold", "failures", "opened_at",
                 "opens", "recovery_timeout", "state")

    def __init__(self, failure_threshold: int = 5, recovery_timeout: float = 60.0, *,
                 clock: Callable[[], float]) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.opens = 0
        self._trial = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May the caller try the remote now?"""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == OPEN:
                if self.clock() - self.opened_at < self.recovery_timeout:
                    return False
                self.state = HALF_OPEN
                self._trial = False
            # half-open: exactly one trial in flight at a time
            if self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        if self.state == CLOSED and self.failures == 0:
            return
        with self._lock:
            self.state = CLOSED
            self.failures = 0
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
                if self.state != OPEN:
                    self.opens += 1
                self.state = OPEN
                self.opened_at = self.clock()
                self._trial = False
