"""Circuit breaker around a remote store (Redis): closed -> open -> half-open.

* closed: calls go through; ``failure_threshold`` consecutive failures open it.
* open: calls are refused at once (the caller uses its local fallback) for
  ``recovery_timeout`` seconds, so a dead Redis costs nothing per request -- no connect
  timeout is paid on the request path while it is down.
* half-open: after the timeout one trial call is let through; success closes the
  breaker, failure re-opens it for another full timeout.

A call admitted by :meth:`CircuitBreaker.allow` is made inside :meth:`guard`, whose
``try/finally`` resolves it whatever happens: success closes the breaker, any
``Exception`` (a Redis error, a ``TimeoutError``, a bug) counts as a failure, and a
cancellation (``CancelledError``, ``KeyboardInterrupt``: not the remote's fault) frees
the half-open trial without judging it, so the next caller tries again. As a last
resort a trial still unresolved after ``recovery_timeout`` (a caller that called
``allow()`` and vanished) is given up and a new one is let through: the breaker can
never stay half-open for good, silently turning a shared limit into a per-worker one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    __slots__ = ("_lock", "_trial", "_trial_at", "clock", "failure_threshold", "failures",
                 "opened_at", "opens", "recovery_timeout", "state")

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
        self._trial_at = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May the caller try the remote now? (Then make the call inside :meth:`guard`.)"""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = self.clock()
            if self.state == OPEN:
                if now - self.opened_at < self.recovery_timeout:
                    return False
                self.state = HALF_OPEN
                self._trial = False
            # half-open: exactly one trial in flight at a time -- unless the one in
            # flight was abandoned long ago without being resolved
            if self._trial and now - self._trial_at < self.recovery_timeout:
                return False
            self._trial = True
            self._trial_at = now
            return True

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Resolve the call made inside it: success, failure (any ``Exception``, which
        is re-raised) or, for a ``BaseException`` such as ``CancelledError``, an
        abandoned trial."""
        try:
            yield
        except Exception:
            self.failure()
            raise
        except BaseException:
            self.abandon()
            raise
        self.success()

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

    def abandon(self) -> None:
        """The call was cancelled before it said anything about the remote: free the
        half-open trial so the next caller makes it (the state is unchanged)."""
        with self._lock:
            self._trial = False
