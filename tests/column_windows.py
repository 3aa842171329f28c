"""Sampling windows opened and closed while application threads read rows: shared by the
SQLAlchemy and Django column-read tests (tests/advisor/test_advisor_columns*.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def churn(reads: Any, page: Callable[[], object], *, threads: int = 3, ticks: int = 200,
          done: Callable[[], object] | None = None,
          until: Callable[[], bool] | None = None) -> list[BaseException]:
    """Run ``page`` in a loop on ``threads`` threads while ``reads.tick`` opens and closes
    about ``ticks / 2`` windows under their feet (each thread calls ``done`` at its
    end), then close the last window; return what the threads raised.

    ``until``: keep ticking past ``ticks`` (up to ten times as many) until it holds --
    on a loaded machine the readers may run in few of the first windows, and a window
    no reader ran in has nothing to count."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def app() -> None:
        try:
            while not stop.is_set():
                page()
        except BaseException as exc:
            errors.append(exc)
        finally:
            if done is not None:
                done()

    running = [threading.Thread(target=app) for _ in range(threads)]
    for t in running:
        t.start()
    now = 0.0
    for tick in range(10 * ticks):
        if tick >= ticks and (until is None or until()):
            break
        now += 0.015
        reads.tick(now)
        time.sleep(0.005)
    stop.set()
    for t in running:
        t.join(20)
    reads.close()
    return errors
