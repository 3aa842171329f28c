"""What every adapter does once, when it is built (docs/architecture.md, "a new adapter").

::

    gate = gate_for(gate, config, options)   # the gate given, or one made from config/options
    endpoints = prepare(gate)                # ORMs instrumented; the dashboard/metrics paths

Then, per request, a :class:`pulsegate.cycle.RequestCycle` ``(gate, endpoints)`` drives
the request; :func:`pulsegate.cycle.record_view_error` names an exception the framework
turns into its own error page; ``gate.close()`` runs at shutdown where the server has
such an event (ASGI's lifespan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulsegate.autoinstrument import instrument_orms
from pulsegate.config import Config, ConfigError
from pulsegate.engine import PulseGate
from pulsegate.export.endpoints import internal_endpoints

if TYPE_CHECKING:
    from pulsegate.export.endpoints import InternalEndpoints


def gate_for(gate: PulseGate | None, config: Config | None,
             options: dict[str, Any]) -> PulseGate:
    """The gate an adapter drives: ``gate`` when given, else one made from ``config``
    and keyword ``options`` (either, both or neither). A gate *and* configuration is a
    :class:`~pulsegate.config.ConfigError`: the gate has its own ``Config``, and one of
    the two would be silently ignored."""
    if gate is None:
        return PulseGate(config, **options) if config is not None else PulseGate(**options)
    if config is not None or options:
        raise ConfigError("gate", gate, "a gate= or configuration (config=, options), "
                          "not both: the gate has its own Config")
    return gate


def prepare(gate: PulseGate) -> InternalEndpoints | None:
    """Instrument the ORMs the gate's options ask for (SQLAlchemy engines existing and
    future: ``instrument_sqlalchemy``) and return the dashboard and Prometheus paths the
    adapter serves (None when both are off: no cost a request)."""
    instrument_orms(gate)
    return internal_endpoints(gate)
