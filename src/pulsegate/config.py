"""``pulsegate.Config``: every option in one frozen object, read by each subsystem as
its own section.

A ``Config`` is built from keyword arguments, a mapping (Django's ``PULSEGATE`` dict,
Flask's ``PULSEGATE_*`` keys) or the environment (``PULSEGATE_<KEY>``). Every value is
validated when the object is built, so a bad option fails at start-up with a
``ConfigError`` naming the key, the value and what is allowed -- never mid-request.

The options are declared in :mod:`pulsegate.config_sections`, one module per
subsystem; ``Config`` inherits every section, so the keyword surface stays flat
(``Config(alpha=0.2, rate_limiting=True)``, ``config.alpha``) while a subsystem takes
only its section::

    >>> config = Config(rate_limit="5/minute")
    >>> config.control.rate_limit, type(config.control).__name__
    ('5/minute', 'ControlConfig')

``docs/configuration.md`` is checked against these declarations by the test-suite
(one table per section), so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

from pulsegate.config_checks import Check, ConfigError, unknown_option
from pulsegate.config_sections.advisor import AdvisorConfig
from pulsegate.config_sections.base import Section, option, refuse_unknown, refuse_unknown_keywords
from pulsegate.config_sections.control import ControlConfig
from pulsegate.config_sections.core import CoreConfig
from pulsegate.config_sections.export import ExportConfig
from pulsegate.config_sections.io import IOConfig
from pulsegate.config_sections.model import ModelConfig
from pulsegate.config_sections.persistence import PersistenceConfig
from pulsegate.config_sections.queries import QueriesConfig
from pulsegate.config_sections.registry import RegistryConfig
from pulsegate.config_sections.respcache import ResponseCacheConfig
from pulsegate.config_sections.units import UnitsConfig

__all__ = ["SECTIONS", "AdvisorConfig", "Check", "Config", "ConfigError", "ControlConfig",
           "CoreConfig", "ExportConfig", "IOConfig", "ModelConfig", "PersistenceConfig", "QueriesConfig",
           "RegistryConfig", "ResponseCacheConfig", "UnitsConfig",
           "option"]

#: The sections in the order of docs/configuration.md; ``Config.<NAME>`` is each one.
SECTIONS: tuple[type[Section], ...] = (CoreConfig, ModelConfig, QueriesConfig, ControlConfig,
                                       PersistenceConfig, RegistryConfig, ExportConfig,
                                       IOConfig, UnitsConfig, ResponseCacheConfig,
                                       AdvisorConfig)

_UNKNOWN = "an option listed in docs/configuration.md"


# The bases are listed last section first: a dataclass collects fields from the far end
# of its bases, so the options keep the order of SECTIONS (core first).
@refuse_unknown_keywords(_UNKNOWN)
@dataclass(frozen=True)
class Config(AdvisorConfig, ResponseCacheConfig, UnitsConfig, IOConfig, ExportConfig,
             RegistryConfig, PersistenceConfig, ControlConfig, QueriesConfig, ModelConfig, CoreConfig):
    """Every pulsegate option. Build with ``Config(**kwargs)``, :meth:`from_mapping` or
    :meth:`from_env`; all values are validated when it is built. ``config.core``,
    ``.model``, ``.queries``, ``.control``, ``.persistence``, ``.registry``,
    ``.export``, ``.io``, ``.units``, ``.respcache`` and ``.advice`` are its sections
    (frozen, built once, not checked again)."""

    NAME: ClassVar[str] = ""

    # --- the sections -------------------------------------------------------------------

    @cached_property
    def core(self) -> CoreConfig:
        return CoreConfig.view(self)

    @cached_property
    def model(self) -> ModelConfig:
        return ModelConfig.view(self)

    @cached_property
    def queries(self) -> QueriesConfig:
        return QueriesConfig.view(self)

    @cached_property
    def control(self) -> ControlConfig:
        return ControlConfig.view(self)

    @cached_property
    def persistence(self) -> PersistenceConfig:
        return PersistenceConfig.view(self)

    @cached_property
    def registry(self) -> RegistryConfig:
        return RegistryConfig.view(self)

    @cached_property
    def export(self) -> ExportConfig:
        return ExportConfig.view(self)

    @cached_property
    def io(self) -> IOConfig:
        return IOConfig.view(self)

    @cached_property
    def units(self) -> UnitsConfig:
        return UnitsConfig.view(self)

    @cached_property
    def respcache(self) -> ResponseCacheConfig:
        return ResponseCacheConfig.view(self)

    @cached_property
    def advice(self) -> AdvisorConfig:
        return AdvisorConfig.view(self)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        """Section name -> its class, in the order of docs/configuration.md."""
        return {section.NAME: section for section in SECTIONS}

    # --- constructors -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, prefix: str = "") -> Config:
        """Build from a mapping; keys may carry ``prefix`` (e.g. ``PULSEGATE_``) and any case.

        Unknown keys raise ``ConfigError`` (with the nearest option, spelt like the key)
        so a typo never silently does nothing."""
        known = _option_names()
        kwargs: dict[str, Any] = {}
        for raw_key, value in values.items():
            if not isinstance(raw_key, str):
                raise unknown_option(repr(raw_key), value, ())
            has_prefix = bool(prefix) and raw_key.upper().startswith(prefix.upper())
            key = (raw_key[len(prefix):] if has_prefix else raw_key).lower()
            if key not in known:
                head = raw_key[:len(prefix)] if has_prefix else ""
                upper = raw_key.isupper()
                raise unknown_option(raw_key, value, (
                    head + (name.upper() if upper else name) for name in known))
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from ``PULSEGATE_*`` environment variables, then apply ``overrides``."""
        values: dict[str, Any] = cls.env_options(environ)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def env_options(cls, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``option -> raw value`` of the ``PULSEGATE_*`` environment variables (checked
        when a Config is built from them); an unknown ``PULSEGATE_*`` name raises."""
        env = os.environ if environ is None else environ
        known = _option_names()
        values: dict[str, str] = {}
        for name, value in env.items():
            if name.startswith("PULSEGATE_"):
                key = name[len("PULSEGATE_"):].lower()
                if key in known:
                    values[key] = value
                elif key not in _ENV_IGNORED:
                    raise unknown_option(name, value, ("PULSEGATE_" + n.upper() for n in known))
        return values

    def replace(self, **changes: Any) -> Config:
        known = _option_names()
        refuse_unknown(changes, frozenset(known), known, _UNKNOWN)
        return dataclasses.replace(self, **changes)

    @classmethod
    def options(cls) -> list[tuple[str, Any, str]]:
        """(name, default, doc) for every option, in declaration order."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
            out.append((f.name, default, str(f.metadata.get("doc", ""))))
        return out


# Environment variables with this prefix that are not options (read elsewhere).
_ENV_IGNORED = {"install_services"}


def _option_names() -> dict[str, None]:
    """Every option name, in declaration order (a dict: ordered, O(1) membership)."""
    return dict.fromkeys(f.name for f in fields(Config))
