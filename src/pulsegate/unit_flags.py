"""An incident of a unit found outside any run (a job that stopped starting, a broker
queue whose oldest message stopped moving), published like the engine's own."""

from __future__ import annotations

from typing import Any

from pulsegate.incidents import Incident
from pulsegate.records import RequestRecord
from pulsegate.units import UnitGate, UnitRun, unit_key

__all__ = ["flag"]


def flag(gate: UnitGate, kind: str, name: str, metric: str, score: float,
         **fields: Any) -> dict[str, Any]:
    """Record an incident of a unit found outside any run (a job that stopped
    running): appended to ``gate.incidents`` and counted, as the engine does with
    the incidents of its windows, and shown to the notable listeners with a record
    of status 0 (no run ended). ``fields`` add to (or override) the
    :class:`~pulsegate.incidents.Incident` ones."""
    at = gate.wall()
    incident = Incident(unit_key(kind, name), at, at, 0.0, 0.0, 0.0, 0.0, 0, 0,
                        float(score), metric).to_dict()
    incident.update(fields)
    gate.counters["incidents"] += 1
    gate.incidents.append(incident)
    # The notable listeners (registry alerts, logs) learn of an incident from the
    # record that comes with it: here one of status 0, the silence as its duration.
    run = UnitRun(kind, name, gate.clock(), None, None, 0, False)
    run.finished = True
    run.outcome = metric
    record = RequestRecord.of_request(
        run, kind, 0, started_at=at, duration_ms=float(incident.get("window_mean_ms") or 0.0),
        cpu_ms=None, memory_blocks=None, anomaly_score=0.0, confidence=0.0,
        predicted_ms=None, detections=0)
    for listener in list(gate.notable_listeners):
        try:
            listener(record, run)
        except Exception as exc:
            gate.faults.record("units.flag listener", exc)
    return incident
