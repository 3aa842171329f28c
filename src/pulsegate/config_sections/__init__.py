"""The configuration's sections, one module per subsystem: ``core``, ``model``,
``queries``, ``control``, ``persistence``, ``registry``, ``export``.

Each declares its options (default, doc line, check) as a frozen dataclass;
:class:`pulsegate.Config` inherits them all and hands each subsystem its own
(``config.control`` is a :class:`~pulsegate.config_sections.control.ControlConfig`).
"""
