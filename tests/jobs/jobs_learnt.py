"""What the job tests read a gate through: its learning done. With ``job_learning=
"background"`` (the default) a job run is learnt by the gate's scheduler thread within
0.5 s of its end (:mod:`pulsegate.jobs.deferred`); a test runs that drain itself before
it looks, as the scheduler would have by then. Inline, nothing is left to do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, overload

from pulsegate.engine import PulseGate
from pulsegate.jobs.runs import deferred_of

#: The two ``job_learning`` modes, for fixtures that run every case in both.
MODES = ["background", "inline"]


def learnt(gate: PulseGate) -> PulseGate:
    """``gate`` once it has learnt every job run that ended."""
    if gate.config.units.job_learning == "background":
        deferred_of(gate).drain()
    return gate


class Seen:
    """The finished runs a gate's unit listeners were given, as ``(name, status,
    duration ms)``, read once the gate learnt every run that ended."""

    def __init__(self, gate: PulseGate) -> None:
        self.gate = gate
        self.rows: list[tuple[str, int, float]] = []
        gate.unit_listeners.append(
            lambda record, run: self.rows.append((record.route, record.status,
                                                  record.duration_ms)))

    def __iter__(self) -> Iterator[tuple[str, int, float]]:
        learnt(self.gate)
        return iter(list(self.rows))

    @overload
    def __getitem__(self, index: int) -> tuple[str, int, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, int, float]]: ...

    def __getitem__(self, index: Any) -> Any:
        learnt(self.gate)
        return self.rows[index]


class StuckExporter:
    """A unit listener that never returns on any thread but the test's: a synchronous
    span exporter whose collector never answers, as the scheduler's drain (which ends
    each background job's child span) meets it. ``stuck`` is set once a drain waits in
    it; ``release`` lets every waiting drain go."""

    def __init__(self, gate: PulseGate) -> None:
        self.stuck, self.release = threading.Event(), threading.Event()
        gate.unit_listeners.append(self)

    def __call__(self, record: Any, run: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.stuck.set()
            self.release.wait()
