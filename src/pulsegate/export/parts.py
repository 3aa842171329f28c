"""What :func:`pulsegate.export.install` attached to each gate (the dashboard, the
internal endpoints and the adapters read it). Its own module so the parts can read it
without importing the package that installs them."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.export.dashboard import DashboardHandler
    from pulsegate.export.logs import LogExporter
    from pulsegate.export.otel import OTelExporter
    from pulsegate.export.prometheus import PrometheusExporter
    from pulsegate.export.series import SeriesStore
    from pulsegate.plugins import Host


@dataclass
class ExportState:
    """What :func:`install` attached to one gate (None: that part is off)."""

    series: SeriesStore | None = None
    otel: OTelExporter | None = None
    prometheus: PrometheusExporter | None = None
    logs: LogExporter | None = None
    dashboard: DashboardHandler | None = None


_STATES: weakref.WeakKeyDictionary[Any, ExportState] = weakref.WeakKeyDictionary()


def state(gate: Host) -> ExportState:
    """The export parts attached to ``gate`` (an empty state if none)."""
    st = _STATES.get(gate)
    if st is None:
        st = _STATES[gate] = ExportState()
    return st
