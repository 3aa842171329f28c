"""Fail open: a fault inside pulsegate is counted and logged once per kind, and the
request carries on as if pulsegate were not there."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("pulsegate")


class FaultCounter:
    """Counts internal errors; logs the first of each kind (where + exception type)."""

    __slots__ = ("by_kind", "lock", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_kind: dict[str, int] = {}
        self.lock = threading.Lock()

    def record(self, where: str, exc: BaseException) -> None:
        kind = f"{where}:{type(exc).__name__}"
        with self.lock:
            self.total += 1
            seen = self.by_kind.get(kind, 0)
            self.by_kind[kind] = seen + 1
        if not seen:
            logger.warning("pulsegate internal error in %s (further ones of this kind are "
                           "only counted): %r", where, exc, exc_info=exc)
