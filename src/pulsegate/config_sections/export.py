"""The export section (``config.export``): OpenTelemetry, Prometheus, structured logs
and the dashboard. Read by ``export/``.

The dashboard's options live here rather than in a section of their own: ``dashboard``
is already the option that switches it on, so ``config.dashboard`` stays that boolean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import _bool, number, text, url_path
from pulsegate.config_sections.base import Section, option, refuse_unknown_keywords


@refuse_unknown_keywords("an option of config.export (docs/configuration.md)")
@dataclass(frozen=True)
class ExportConfig(Section):
    """Where pulsegate reports: OpenTelemetry, Prometheus, logs, the dashboard."""

    NAME: ClassVar[str] = "export"

    otel: bool = option(False, "Add pulsegate.* attributes and detection events to the active "
                        "OpenTelemetry span and record OTel metrics (needs opentelemetry-api).",
                        _bool)
    prometheus: bool = option(False, "Record pulsegate's metrics with prometheus-client "
                              "(default registry).", _bool)
    prometheus_path: str | None = option(
        "/_pulsegate/metrics", "Path where the middleware serves the Prometheus metrics when "
        "`prometheus` is on; none: only register them in the client's registry.",
        url_path(optional=True))
    log_events: bool = option(True, "Log anomalies and incidents as structured records "
                              "(logger pulsegate.anomalies, `extra` fields), from the "
                              "background thread.", _bool)
    raw_paths: bool = option(False, "Export request paths as they came (anomaly log records, "
                             "the dashboard, the state file); by default a path is folded "
                             "like a cache key: ids become {id}, a segment no route template "
                             "spells becomes {*}.", _bool)
    dashboard: bool = option(False, "Serve the dashboard and its JSON API (needs "
                             "dashboard_token or dashboard_allow_loopback).", _bool)
    dashboard_path: str = option("/_pulsegate", "URL path of the dashboard page; its JSON "
                                 "API is under <path>/api/.", url_path())
    dashboard_token: str | None = option(None, "Secret the dashboard requires (Authorization: "
                                         "Bearer, or ?token= for the page); compared in "
                                         "constant time.", text(optional=True))
    dashboard_allow_loopback: bool = option(False, "Let loopback peers (127.0.0.1, ::1) "
                                            "without a token in. Never behind a proxy on "
                                            "the same host.", _bool)
    dashboard_points: int = option(120, "Aggregation windows kept per endpoint for the "
                                   "dashboard's charts (ring buffer).", number(2, 10000, integer=True))
