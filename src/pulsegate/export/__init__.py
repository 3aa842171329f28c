"""Reporting out of the process: OpenTelemetry, Prometheus, structured logs and the
dashboard. Each part is off unless configured, and none is imported until it is.

:func:`install` is called by the engine once per gate; :func:`state` returns what it
attached (the dashboard and the adapters read it)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pulsegate.export.parts import ExportState, state

if TYPE_CHECKING:
    from pulsegate.plugins import Host

__all__ = ["ExportState", "install", "state"]

logger = logging.getLogger("pulsegate")
_EXTRA = {"otel": "otel", "prometheus": "prometheus"}

def install(gate: Host) -> ExportState:
    """Attach every configured export part to ``gate``. A part whose optional package is
    missing is skipped with a logged warning (counted in ``stats()``), never a crash."""
    c = gate.config.export
    st = state(gate)
    parts = [("logs", c.log_events), ("otel", c.otel), ("prometheus", c.prometheus),
             ("dashboard", c.dashboard)]
    for name, wanted in parts:
        if not wanted:
            continue
        try:
            _install_part(gate, st, name)
        except ImportError as exc:
            logger.warning("pulsegate: %s=True needs the %r extra (pip install "
                           "'pulsegate[%s]'); %s export is off: %s", name, _EXTRA.get(name, name),
                           _EXTRA.get(name, name), name, exc)
            gate.faults.record(f"export {name}", exc)
        except Exception as exc:
            gate.faults.record(f"export {name}", exc)
    return st


def _install_part(gate: Host, st: ExportState, name: str) -> None:
    if name == "logs":
        from pulsegate.export.logs import install as install_logs
        st.logs = install_logs(gate)
    elif name == "otel":
        from pulsegate.export.otel import install as install_otel
        st.otel = install_otel(gate)
    elif name == "prometheus":
        from pulsegate.export.prometheus import install as install_prometheus
        st.prometheus = install_prometheus(gate)
    elif name == "dashboard":
        from pulsegate.export.dashboard import install as install_dashboard
        st.dashboard = install_dashboard(gate, st)
