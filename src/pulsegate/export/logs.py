"""Structured logs: stdlib ``logging`` records whose ``extra`` fields carry the figures,
so a JSON formatter (``python-json-logger``, structlog's stdlib bridge, or
:class:`JsonFormatter` here) turns them into searchable fields.

Loggers and the ``pulsegate_event`` value of their records:

=========================  =========================  ==========================
logger                     ``pulsegate_event``        written by
=========================  =========================  ==========================
``pulsegate.anomalies``    ``anomaly``, ``incident``  this module
``pulsegate.queries``      ``detection``              the query analysis
``pulsegate.alerts``       ``alert``                  the registry's alerts
=========================  =========================  ==========================

Every ``extra`` field is prefixed ``pulsegate_`` so it can never clash with a
``LogRecord`` attribute or an application's own fields. Common fields:
``pulsegate_event``, ``pulsegate_endpoint`` (``"GET /users/{id}"``), ``pulsegate_at``
(epoch seconds); anomalies add ``pulsegate_duration_ms``, ``pulsegate_predicted_ms``,
``pulsegate_score``, ``pulsegate_confidence``, ``pulsegate_status``; incidents add
``pulsegate_window_mean_ms``, ``pulsegate_expected_ms``, ``pulsegate_score``;
detections (see :func:`detection_extra`) ``pulsegate_kind``, ``pulsegate_sql``
(redacted), ``pulsegate_count``, ``pulsegate_total_ms``, ``pulsegate_call_site``,
``pulsegate_relationship``, ``pulsegate_suggestion``, ``pulsegate_confidence``.

Writing a log record is I/O (a handler may write to a file or a socket), so the
request path only appends to a bounded queue; the scheduler thread writes the records
once a second (``flush``). Past ``max_recent`` queued events the oldest are dropped and
counted (``dropped``).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from pulsegate.export.series import detection_fields
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.engine import PulseGate

ANOMALY_LOGGER = "pulsegate.anomalies"
QUERY_LOGGER = "pulsegate.queries"
ALERT_LOGGER = "pulsegate.alerts"
FLUSH_INTERVAL = 1.0

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime"}


def detection_extra(det: Any, endpoint: str | None = None,
                    at: float | None = None) -> dict[str, Any]:
    """The ``extra`` mapping for one query detection (redacted SQL, never parameters)."""
    out: dict[str, Any] = {"pulsegate_event": "detection", "pulsegate_endpoint": endpoint,
                           "pulsegate_at": at}
    for name, value in detection_fields(det).items():
        out["pulsegate_" + name] = value
    return out


def anomaly_extra(record: RequestRecord) -> dict[str, Any]:
    return {"pulsegate_event": "anomaly", "pulsegate_endpoint": record.endpoint,
            "pulsegate_at": record.started_at, "pulsegate_path": record.path,
            "pulsegate_status": record.status,
            "pulsegate_duration_ms": round(record.duration_ms, 3),
            "pulsegate_predicted_ms": None if record.predicted_ms is None
            else round(record.predicted_ms, 3),
            "pulsegate_score": round(record.anomaly_score, 4),
            "pulsegate_confidence": round(record.confidence, 2)}


def incident_extra(incident: dict[str, Any]) -> dict[str, Any]:
    return {"pulsegate_event": "incident", "pulsegate_endpoint": incident.get("endpoint"),
            "pulsegate_at": incident.get("at"),
            "pulsegate_window_mean_ms": incident.get("window_mean_ms"),
            "pulsegate_expected_ms": incident.get("expected_ms"),
            "pulsegate_score": incident.get("score")}


class LogExporter:
    """Queues anomalies and incidents on the request path, logs them off it."""

    def __init__(self, gate: PulseGate, logger: logging.Logger | None = None) -> None:
        self.gate = gate
        self.logger = logger or logging.getLogger(ANOMALY_LOGGER)
        self.queue: deque[tuple[str, dict[str, Any]]] = deque()
        self.max_queue = gate.config.max_recent
        self.dropped = 0
        self._incidents_seen = 0

    def __call__(self, record: RequestRecord, ctx: RequestContext) -> None:
        gate = self.gate
        recent = gate.recent_anomalies
        if recent and recent[-1] is record:
            self._push("anomaly", anomaly_extra(record))
        n = gate.counters.get("incidents", 0)
        if n != self._incidents_seen:
            new = n - self._incidents_seen
            self._incidents_seen = n
            for incident in list(gate.incidents)[-new:]:
                self._push("incident", incident_extra(incident))

    def _push(self, kind: str, extra: dict[str, Any]) -> None:
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append((kind, extra))

    def flush(self) -> int:
        """Write the queued records; returns how many. Runs on the scheduler thread."""
        n = 0
        log = self.logger
        while self.queue:
            try:
                kind, extra = self.queue.popleft()
            except IndexError:
                break
            if kind == "anomaly":
                log.warning("anomalous request on %s: %.1f ms (forecast %s ms, score %.2f)",
                            extra["pulsegate_endpoint"], extra["pulsegate_duration_ms"],
                            extra["pulsegate_predicted_ms"], extra["pulsegate_score"],
                            extra=extra)
            else:
                log.warning("incident on %s: window mean %.1f ms against %.1f ms expected",
                            extra["pulsegate_endpoint"], extra["pulsegate_window_mean_ms"] or 0.0,
                            extra["pulsegate_expected_ms"] or 0.0, extra=extra)
            n += 1
        return n


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every ``extra``
    field (pulsegate's ``pulsegate_*`` ones and any other)::

        handler.setFormatter(pulsegate.export.logs.JsonFormatter())
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": record.created, "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def install(gate: PulseGate) -> LogExporter:
    exporter = LogExporter(gate)
    gate.listeners.append(exporter)
    gate.scheduler.every(FLUSH_INTERVAL, exporter.flush, name="pulsegate.export.logs")
    return exporter
