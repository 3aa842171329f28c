"""The registry section (``config.registry``): model management -- accuracy and
degradation monitoring, threshold auto-tuning on feedback, alerts, and how many
predictions and labels are kept. Read by ``registry/``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pulsegate.config_checks import (
    _bool,
    _grid,
    _http_url,
    callable_or_none,
    mapping,
    number,
)
from pulsegate.config_sections.base import (
    MILLION,
    WEEK_S,
    YEAR_S,
    Section,
    option,
    refuse_unknown_keywords,
)


@refuse_unknown_keywords("an option of config.registry (docs/configuration.md)")
@dataclass(frozen=True)
class RegistryConfig(Section):
    """Monitoring, tuning and alerts of the models."""

    NAME: ClassVar[str] = "registry"

    monitoring_interval: float = option(300.0, "Seconds between model accuracy checks.",
                                        number(1, WEEK_S))
    degradation_interval: float = option(900.0, "Seconds between model degradation checks.",
                                         number(1, WEEK_S))
    monitor_min_labels: int = option(20, "Labels a model needs before accuracy/degradation "
                                     "alerts.", number(1, MILLION, integer=True))
    accuracy_target: float = option(0.8, "Accuracy (last 100 labels) under which a model "
                                    "raises an alert.", number(0, 1))
    accuracy_targets: Mapping[str, Any] = option(dict, "Per-model accuracy targets overriding "
                                                 "accuracy_target, e.g. {\"n1-detector\": 0.95}.",
                                                 mapping(number(0, 1), "a mapping of model name -> a "
                                                         "number >= 0 and <= 1"), factory=True)
    degradation_threshold: float = option(0.05, "Relative drop of F1 against the version's "
                                          "baseline that raises an alert.", number(0, 1))
    auto_tuning: bool = option(True, "Tune model thresholds from labelled feedback.", _bool)
    tuning_interval: float = option(3600.0, "Seconds between threshold auto-tuning runs.",
                                    number(1, WEEK_S))
    tuning_min_labels: int = option(50, "Labels in the window needed before tuning.",
                                    number(1, MILLION, integer=True))
    tuning_min_improvement: float = option(0.05, "Relative F1 gain a new threshold must bring "
                                           "to be applied.", number(0, 100))
    tuning_window: float = option(86400.0, "Seconds of labelled feedback tuning looks at.",
                                  number(1, YEAR_S))
    tuning_grid: tuple[float, float, float] = option((0.5, 0.9, 0.05), "Threshold grid searched by "
                                          "tuning: low, high, step.", _grid)
    alert_callback: Callable[[Any], object] | None = option(  # noqa: RUF009
        None, "Callable receiving each Alert (scheduler thread).", callable_or_none)
    alert_webhook: str | None = option(None, "http(s) URL receiving each alert as a JSON POST "
                                       "(scheduler thread).", _http_url)
    # Off by default: one slow request is not worth a page. Routine GC pauses reach 0.9
    # on unchanged endpoints (0.9-35 alerts per endpoint-day, incident_streams.py
    # --engine); an incident -- evidence over windows -- is what pages.
    alert_critical_score: float | None = option(
        None, "Anomaly score at or above which a single request raises a critical alert "
        "(none: single requests never alert; incidents do).", number(0, 1, optional=True))
    alert_cooldown: float = option(300.0, "Seconds during which a repeat of the same alert is "
                                   "suppressed.", number(0, WEEK_S))
    max_predictions: int = option(10000, "Cap on recent predictions kept for feedback by id.",
                                  number(10, 10 * MILLION, integer=True))
    max_labels: int = option(10000, "Labels kept per model for windows and tuning.",
                             number(1000, 10 * MILLION, integer=True))
