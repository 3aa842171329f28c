"""The units section (``config.units``): work that is not an HTTP request -- jobs, their
queue wait, outbound calls, cache patterns -- learnt by the endpoint models under
``"<KIND> <name>"`` keys (:mod:`pulsegate.units`). Read by ``units.py`` and the packages
built on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import choice, number
from pulsegate.config_sections.base import Section, option, refuse_unknown_keywords


@refuse_unknown_keywords("an option of config.units (docs/configuration.md)")
@dataclass(frozen=True)
class UnitsConfig(Section):
    """How many units of each kind are learnt."""

    NAME: ClassVar[str] = "units"

    max_units: int = option(200, "Cap on names per kind of unit (job names, upstream hosts, "
                            "cache key patterns); a new name past it folds into "
                            "`<KIND> (other)`. Their models share `max_endpoints`.",
                            number(1, 100_000, integer=True))
    job_learning: str = option("background", "Where a job run is learnt: background (the "
                               "worker's thread only reads the clocks and queues the run; "
                               "the gate's scheduler thread learns it within 0.5 s, and "
                               "OpenTelemetry gets the record on a child span of the job's "
                               "span) or inline (the worker's thread, when the job ends: "
                               "the record goes on the job's own span).",
                               choice("background", "inline"))
    queue_stall_seconds: float = option(300.0, "A watched broker queue (pulsegate.jobs."
                                        "broker) whose oldest message has not moved for "
                                        "this long stalls, whatever the dwell learnt; "
                                        "the whole line before ten dwells are known.",
                                        number(1.0, 7 * 86_400.0))
