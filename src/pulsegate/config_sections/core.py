"""The core section (``config.core``): the master switch, which response headers to
send, the paths skipped, what is measured per request (CPU, memory, and how often),
which SQLAlchemy engines are instrumented, and free-form settings for integrations.
Read by the engine and the adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pulsegate.config_checks import _bool, choice, mapping, number, paths, sqlalchemy_setting
from pulsegate.config_sections.base import MILLION, Section, option, refuse_unknown_keywords


@refuse_unknown_keywords("an option of config.core (docs/configuration.md)")
@dataclass(frozen=True)
class CoreConfig(Section):
    """Every request: the switch, headers, exclusions and what is measured."""

    NAME: ClassVar[str] = "core"

    enabled: bool = option(True, "Master switch. When false the middleware is a pass-through.", _bool)
    headers: str = option("all", "Which x-ml-* response headers to expose: all | safe | none. "
                          "`safe` sends only x-ml-optimization-applied and x-ml-model-version.",
                          choice("all", "safe", "none"))
    exclude_paths: tuple[str, ...] = option(
        ("/health", "/healthz", "/livez", "/readyz"),
        "URL paths (exact, or as a /-segment prefix) skipped before any measuring.", paths)
    measure_cpu: bool = option(True, "Record the CPU time of sampled requests (thread CPU "
                               "clock).", _bool)
    cpu_sample_every: int = option(4, "Measure CPU time on one request in N at most (the "
                                   "thread CPU clock is a system call, ~0.3-0.7 µs per "
                                   "read).", number(1, MILLION, integer=True))
    cpu_sample_budget_us: float = option(
        0.1, "Average cost per request the CPU samples may have, in µs: each read of the "
        "thread CPU clock is timed, and the interval is stretched past cpu_sample_every "
        "where the system call is dear (virtual machines, sandboxes). 0 keeps the "
        "interval fixed.", number(0, MILLION))
    measure_memory: bool = option(True, "Record the net allocated interpreter blocks "
                                  "(sys.getallocatedblocks delta) of sampled requests.", _bool)
    memory_sample_every: int = option(64, "Measure memory on one request in N at most (the "
                                      "block count walks every allocator pool: ~1 µs per read "
                                      "in a small process, ~10 µs at 30 MB of objects, more "
                                      "beyond).", number(1, MILLION, integer=True))
    memory_sample_budget_us: float = option(
        0.25, "Average cost per request the memory samples may have, in µs: each sample "
        "is timed, and the interval is stretched past memory_sample_every when the heap "
        "makes a read dearer. 0 keeps the interval fixed.", number(0, MILLION))
    instrument_sqlalchemy: bool | tuple[Any, ...] = option(
        True, "Which SQLAlchemy engines the middleware instruments when it is built: true "
        "-- every engine, existing and future (when SQLAlchemy is installed); false -- none "
        "(call pulsegate.sqlalchemy.instrument(engine) yourself); or a list of engines.",
        sqlalchemy_setting)
    extra: Mapping[str, Any] = option(dict, "Free-form settings for integrations; not "
                                      "validated.", mapping(allowed="a mapping (values not checked)"),
                                      factory=True)
