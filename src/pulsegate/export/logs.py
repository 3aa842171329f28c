"""Structured logs: stdlib ``logging`` records whose ``extra`` fields carry the figures,
so a JSON formatter (``python-json-logger``, structlog's stdlib bridge, or
:class:`JsonFormatter` here) turns them into searchable fields.

One convention for every pulsegate logger: the figures go in one ``extra`` key named
``pulsegate_<event>`` holding a flat dict, and, when there is one, ``endpoint`` holds
``"GET /users/{id}"``:

=========================  ==========================  ============================
logger                     ``extra`` key               written by
=========================  ==========================  ============================
``pulsegate.anomalies``    ``pulsegate_anomaly``       this module (anomalous request)
``pulsegate.anomalies``    ``pulsegate_incident``      this module (sustained shift)
``pulsegate.queries``      ``pulsegate_detection``     the query analysis
``pulsegate.alerts``       ``pulsegate_alert``         the registry's alerts
=========================  ==========================  ============================

``pulsegate_anomaly``: ``at`` (epoch s), ``path``, ``status``, ``duration_ms``,
``predicted_ms``, ``score`` (0-1: how unusual this one request is), ``confidence``
(0-100), ``metric`` (the one whose rise gave the score: ``latency``, ``queries``,
``query_time``, ``repeat_share``, ``cpu``) and ``unusual`` (the same in words, e.g.
``query count above usual``). ``pulsegate_incident`` (the endpoint changed; the fields of
:class:`pulsegate.incidents.Incident`): ``start``, ``at``, ``metric`` (``latency``,
``latency drift``, ``latency tail`` or ``error rate``: what made it unusual), ``direction``,
``window_mean_ms``, ``expected_ms``, ``ratio``, ``excess_ms``, ``error_rate``,
``expected_error_rate``, ``requests``, ``windows``, ``score``. ``pulsegate_detection`` (see
:func:`detection_extra`): ``kind``, ``fingerprint``, ``sql`` (redacted: literals
replaced, never parameters), ``count``, ``total_ms``, ``call_site``, ``relationship``,
``suggestion``, ``confidence``.

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

from pulsegate.export.paths import exported_path
from pulsegate.export.series import detection_fields
from pulsegate.incidents import describe
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host

ANOMALY_LOGGER = "pulsegate.anomalies"
QUERY_LOGGER = "pulsegate.queries"
ALERT_LOGGER = "pulsegate.alerts"
FLUSH_INTERVAL = 1.0

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime"}


def detection_extra(det: Any, endpoint: str | None = None) -> dict[str, Any]:
    """The ``extra`` mapping for one query detection (redacted SQL, never parameters)."""
    return {"pulsegate_detection": detection_fields(det), "endpoint": endpoint}


def anomaly_extra(record: RequestRecord) -> dict[str, Any]:
    """The record's fields; its ``path`` is the raw one until :meth:`LogExporter.flush`
    folds it (:mod:`pulsegate.export.paths`), off the request path."""
    return {"pulsegate_anomaly": {
        "at": record.started_at, "path": record.path, "status": record.status,
        "duration_ms": round(record.duration_ms, 3),
        "predicted_ms": None if record.predicted_ms is None else round(record.predicted_ms, 3),
        "score": round(record.anomaly_score, 4), "confidence": round(record.confidence, 2),
        "metric": record.anomaly_metric, "unusual": record.unusual},
        "endpoint": record.endpoint}


def incident_extra(incident: dict[str, Any]) -> dict[str, Any]:
    return {"pulsegate_incident": {k: incident.get(k) for k in (
        "start", "at", "metric", "direction", "window_mean_ms", "expected_ms", "ratio",
        "excess_ms", "error_rate", "expected_error_rate", "requests", "windows", "score",
        "id") if k in incident},
        "endpoint": incident.get("endpoint")}


class LogExporter:
    """Queues anomalies and incidents on the request path, logs them off it."""

    def __init__(self, gate: Host, logger: logging.Logger | None = None) -> None:
        self.gate = gate
        self.logger = logger or logging.getLogger(ANOMALY_LOGGER)
        self.queue: deque[tuple[str, dict[str, Any]]] = deque()
        self.max_queue = gate.config.model.max_recent
        self.dropped = 0
        self._incidents_seen = 0

    def __call__(self, record: RequestRecord, ctx: RequestContext) -> None:
        gate = self.gate
        if record.anomalous:
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
                a = extra["pulsegate_anomaly"]
                a["path"] = exported_path(self.gate, a["path"])
                # One slow request is information; an incident (below) is a warning.
                log.info("anomalous request on %s: %s: %.1f ms (forecast %s ms, score %.2f)",
                         extra["endpoint"], a["unusual"] or "latency", a["duration_ms"],
                         a["predicted_ms"], a["score"], extra=extra)
            else:
                i = extra["pulsegate_incident"]
                log.warning("incident on %s: %s", extra["endpoint"], describe(i), extra=extra)
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


def install(gate: Host) -> LogExporter:
    exporter = LogExporter(gate)
    gate.notable_listeners.append(exporter)
    gate.scheduler.every(FLUSH_INTERVAL, exporter.flush, name="pulsegate.export.logs")
    return exporter
