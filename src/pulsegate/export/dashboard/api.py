"""The dashboard's JSON: assembled from the engine, the series store and, when present,
the model registry, the performance monitor and the control plane.

The registry and control parts are read by attribute name (``gate.registry``,
``gate.monitor``, ``gate.predictions``, ``gate.allocator``, ``gate.limiter``), so the
dashboard works -- with fewer panels filled -- whichever of them a gate has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.export.series import SeriesStore, allocator_state

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate

#: Endpoints whose series are embedded in the summary (most requested first).
SUMMARY_SERIES = 12

_REGISTRY_NAMES = ("registry", "models")
_MONITOR_NAMES = ("monitor", "performance")
_PREDICTION_NAMES = ("predictions", "prediction_log")


def _first(gate: PulseGate, names: tuple[str, ...], method: str) -> Any:
    for name in names:
        obj = getattr(gate, name, None)
        if obj is not None and callable(getattr(obj, method, None)):
            return obj
    return None


def resolver(gate: PulseGate) -> Callable[[object], str | None] | None:
    """Maps a record or detection to the registry's prediction id, when there is one."""
    log = _first(gate, _PREDICTION_NAMES, "id_of")
    return None if log is None else log.id_of  # type: ignore[no-any-return]


def models(gate: PulseGate) -> list[dict[str, Any]]:
    """The model registry's rows with their accuracy figures; without a registry, the
    engine's own scoring model."""
    reg = _first(gate, _REGISTRY_NAMES, "list")
    rows: list[dict[str, Any]]
    if reg is not None:
        rows = [dict(r) for r in reg.list()]
    else:
        rows = [{"name": "latency-baseline", "version": gate.model_version, "config": {
            "alpha": gate.config.alpha, "z_threshold": gate.config.z_threshold,
            "warmup": gate.config.warmup}, "metrics": {}}]
    mon = _first(gate, _MONITOR_NAMES, "summary")
    perf: dict[str, Any] = mon.summary() if mon is not None else {}
    for row in rows:
        row["performance"] = perf.get(str(row.get("name")), {})
    return rows


def control(gate: PulseGate, series: SeriesStore) -> dict[str, Any]:
    limit, in_flight = allocator_state(gate)
    alloc = getattr(gate, "allocator", None)
    alloc_stats = None
    if alloc is not None and callable(getattr(alloc, "stats", None)):
        alloc_stats = alloc.stats()
    limiter = getattr(gate, "limiter", None) or getattr(gate, "rate_limiter", None)
    limiter_stats = None
    if limiter is not None and callable(getattr(limiter, "stats", None)):
        limiter_stats = limiter.stats()
    counters = gate.counters
    return {"limit": limit, "in_flight": in_flight, "allocator": alloc_stats,
            "limiter": limiter_stats, "throttled": counters.get("throttled", 0),
            "shed": counters.get("shed", 0),
            "rate_limiting": bool(gate.config.rate_limiting),
            "resource_allocation": bool(gate.config.resource_allocation),
            "throttled_clients": series.top_throttled(),
            "series": series.control_series()}


def series_payload(gate: PulseGate, series: SeriesStore, endpoint: str) -> dict[str, Any]:
    return {"endpoint": endpoint, "window": series.window,
            "points": series.endpoint_series(endpoint)}


def summary(gate: PulseGate, series: SeriesStore) -> dict[str, Any]:
    resolve = resolver(gate)
    endpoints = gate.endpoints()
    for i, row in enumerate(endpoints):
        if i < SUMMARY_SERIES:
            row["series"] = series.endpoint_series(str(row["endpoint"]))
    return {
        "at": gate.wall(),
        "window": series.window,
        "stats": gate.stats(),
        "endpoints": endpoints,
        "anomalies": series.recent_anomalies(50, resolve),
        "incidents": list(gate.incidents)[-20:][::-1],
        "detections": series.recent_detections(50, resolve),
        "control": control(gate, series),
        "models": models(gate),
        "feedback_enabled": callable(getattr(gate, "feedback", None)),
    }


def feedback(gate: PulseGate, series: SeriesStore, ident: str,
             correct: bool) -> tuple[int, dict[str, Any]]:
    """Label one anomaly or detection: forwarded to ``gate.feedback(id, correct)`` (the
    registry's precision/recall and tuning), and remembered for the page."""
    resolve = resolver(gate)
    known = {r["id"] for r in series.recent_anomalies(series.max_recent, resolve)}
    known |= {r["id"] for r in series.recent_detections(series.max_recent, resolve)}
    fb = getattr(gate, "feedback", None)
    forwarded: Any = None
    if callable(fb):
        try:
            forwarded = fb(ident, correct)
        except KeyError:
            if ident not in known:
                return 404, {"error": f"unknown detection id {ident!r}"}
    elif ident not in known:
        return 404, {"error": f"unknown detection id {ident!r}"}
    if forwarded is False and ident not in known:
        return 404, {"error": f"unknown detection id {ident!r}"}
    with series.lock:
        series.feedback[ident] = correct
        if len(series.feedback) > 4 * series.max_recent:
            series.feedback.pop(next(iter(series.feedback)))
    out: dict[str, Any] = {"id": ident, "correct": correct, "forwarded": callable(fb)}
    if isinstance(forwarded, dict):
        out["result"] = forwarded
    elif hasattr(forwarded, "_asdict"):
        out["result"] = forwarded._asdict()
    return 200, out
