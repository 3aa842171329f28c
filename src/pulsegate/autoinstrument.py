"""Queries counted with the documented lines: the middleware instruments the ORMs it
finds, as Sentry's and OpenTelemetry's auto-instrumentation do.

The ``instrument_sqlalchemy`` option says which SQLAlchemy engines:

* ``True`` (default): every engine, existing and future -- when SQLAlchemy is
  importable, :func:`pulsegate.sqlalchemy.instrument` listens on the ``Dialect`` class,
  so an engine created after the middleware is covered too;
* ``False``: none (call ``pulsegate.sqlalchemy.instrument(engine)`` yourself);
* a list of engines (``Engine`` or ``AsyncEngine``): only those.

Django's ORM is instrumented by ``INSTALLED_APPS += ["pulsegate.django"]`` and Flask-
SQLAlchemy's engines by the Flask extension, as before. This module imports no ORM
itself: the adapters call :func:`instrument_orms` when they are built, and nothing is
imported when SQLAlchemy is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["instrument_clients", "instrument_orms"]


def instrument_orms(gate: Any) -> None:
    """Apply ``gate.config.core.instrument_sqlalchemy``, and the I/O settings
    (:func:`instrument_clients`). Fails open: a failure is logged and counted in
    ``gate.stats()["internal_errors"]``, the app starts as usual."""
    instrument_clients(gate)
    setting = gate.config.core.instrument_sqlalchemy
    if setting is False:
        return
    if setting is True and "sqlalchemy" not in sys.modules:
        try:
            if importlib.util.find_spec("sqlalchemy") is None:
                return
        except (ImportError, ValueError):
            return
    try:
        from pulsegate.sqlalchemy import instrument

        if setting is True:
            instrument()
        else:
            for engine in setting:
                instrument(engine)
    except Exception as exc:  # logged once, with its traceback, by the fault counter
        gate.faults.record("sqlalchemy.instrument", exc)


def instrument_clients(gate: Any) -> None:
    """Apply ``cache_monitoring`` (Django's caches, redis-py: :func:`pulsegate.caches.
    instrument`) and ``outbound_monitoring`` (httpx, requests: :func:`pulsegate.outbound.
    instrument`). Each imports nothing that is not installed and fails open."""
    io = gate.config.io
    if io.cache_monitoring:
        from pulsegate.caches import instrument as instrument_caches

        instrument_caches(gate)
    if io.outbound_monitoring:
        from pulsegate.outbound import instrument as instrument_outbound

        instrument_outbound(gate)
