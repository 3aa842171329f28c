"""The dashboard's JSON: assembled from the engine, the series store and what the
gate's components registered on ``gate.plugs`` -- the model catalog (the registry), the
``control`` stats section, the allocator's gauges, the reports -- so the dashboard works,
with fewer panels filled, whichever of them a gate has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.export.series import SeriesStore, allocator_state
from pulsegate.queries.ranking import ranked_findings

if TYPE_CHECKING:
    from pulsegate.plugins import Host

#: Endpoints whose series are embedded in the summary (most requested first).
SUMMARY_SERIES = 12
#: Rows of the ranked query findings in the summary (``pulsegate report --limit``'s role).
SUMMARY_FINDINGS = 50


def resolver(gate: Host) -> Callable[[object], str | None] | None:
    """Maps an anomalous record or a query detection to the registry's prediction id
    (the id ``gate.feedback`` takes), when the gate has a registry."""
    catalog = gate.plugs.catalog
    return None if catalog is None else catalog.prediction_id


def models(gate: Host) -> list[dict[str, Any]]:
    """The model registry's rows with their accuracy figures; without a registry, the
    engine's own scoring model."""
    catalog = gate.plugs.catalog
    if catalog is not None:
        return catalog.model_rows()
    return [{"name": "latency-baseline", "version": gate.model_version, "config": {
        "alpha": gate.config.model.alpha, "z_threshold": gate.config.model.z_threshold,
        "warmup": gate.config.model.warmup}, "metrics": {}, "performance": {}}]


def control(gate: Host, series: SeriesStore) -> dict[str, Any]:
    limit, in_flight = allocator_state(gate)
    section = gate.plugs.stats.get("control")
    parts = section.stats() if section is not None else {}
    counters = gate.counters
    return {"limit": limit, "in_flight": in_flight, "allocator": parts.get("allocator"),
            "limiter": parts.get("ratelimit"), "throttled": counters.get("throttled", 0),
            "shed": counters.get("shed", 0),
            "rate_limiting": bool(gate.config.control.rate_limiting),
            "resource_allocation": bool(gate.config.control.resource_allocation),
            "throttled_clients": series.top_throttled(),
            "series": series.control_series()}


def series_payload(gate: Host, series: SeriesStore, endpoint: str) -> dict[str, Any]:
    return {"endpoint": endpoint, "window": series.window,
            "points": series.endpoint_series(endpoint)}


def summary(gate: Host, series: SeriesStore) -> dict[str, Any]:
    resolve = resolver(gate)
    endpoints = gate.endpoints()
    sections = reports(gate)
    for i, row in enumerate(endpoints):
        if i < SUMMARY_SERIES:
            row["series"] = series.endpoint_series(str(row["endpoint"]))
    return {
        "at": gate.wall(),
        "window": series.window,
        "stats": series.totals(gate.stats()),  # with the counts before a restart
        "endpoints": endpoints,
        "anomalies": series.recent_anomalies(50, resolve),
        "incidents": [dict(i, feedback=series.feedback.get(str(i.get("id"))))
                      for i in list(gate.incidents)[-20:][::-1]],
        "detections": series.recent_detections(50, resolve),
        "control": control(gate, series),
        "models": models(gate),
        "feedback_enabled": callable(getattr(gate, "feedback", None)),
        "reports": sections,
        "findings": findings(gate, sections),
    }


def findings(gate: Host, sections: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The N+1 insights and the query advisor's findings in one list, ranked as
    ``pulsegate report`` ranks them (:func:`pulsegate.queries.ranking.ranked_findings`),
    at most ``SUMMARY_FINDINGS`` rows."""
    catalog = gate.plugs.catalog
    insights = catalog.query_insights() if catalog is not None else []
    sections = reports(gate) if sections is None else sections
    section = sections.get("advisor")
    advice = section.get("findings") if isinstance(section, dict) else None
    return ranked_findings(insights, advice if isinstance(advice, list) else [], gate.wall(),
                           SUMMARY_FINDINGS)


def reports(gate: Host) -> dict[str, Any]:
    """The sections components registered with ``plugs.add_report`` (the advisor's)."""
    out: dict[str, Any] = {}
    for name, report in list(gate.plugs.reports.items()):
        try:
            out[name] = report()
        except Exception as exc:
            gate.faults.record(f"report {name}", exc)
    return out


def feedback(gate: Host, series: SeriesStore, ident: str,
             correct: bool) -> tuple[int, dict[str, Any]]:
    """Label one anomaly, incident or detection: forwarded to
    ``gate.feedback(id, correct)`` (the registry's accuracy/F1 and tuning) and
    remembered for the page. 404 when nobody knows the id."""
    fb = getattr(gate, "feedback", None)
    if callable(fb):
        if fb(ident, correct) is False:
            return 404, {"error": f"unknown detection id {ident!r}"}
    else:
        resolve = resolver(gate)
        known = {r["id"] for r in series.recent_anomalies(series.max_recent, resolve)}
        known |= {r["id"] for r in series.recent_detections(series.max_recent, resolve)}
        if ident not in known:
            return 404, {"error": f"unknown detection id {ident!r}"}
    with series.lock:
        series.feedback[ident] = correct
        if len(series.feedback) > 4 * series.max_recent:
            series.feedback.pop(next(iter(series.feedback)))
    return 200, {"id": ident, "correct": correct, "forwarded": callable(fb)}
