"""The model section (``config.model``): the online per-endpoint model (smoothing,
z-score, warm-up), its caps, the aggregation window of the incident series, seasonality
and the optional multivariate model. Read by ``learn/`` through the engine, and by the
reports and exporters that keep recent anomalies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import _bool, choice, number
from pulsegate.config_sections.base import (
    DAY_S,
    MILLION,
    WEEK_S,
    YEAR_S,
    Section,
    option,
    refuse_unknown_keywords,
)


@refuse_unknown_keywords("an option of config.model (docs/configuration.md)")
@dataclass(frozen=True)
class ModelConfig(Section):
    """The online per-endpoint model and what is kept of its findings."""

    NAME: ClassVar[str] = "model"

    alpha: float = option(0.3, "Exponential-smoothing factor of the forecast, in (0, 1].",
                          number(0, 1, lo_open=True))
    z_threshold: float = option(3.0, "|z| above which a metric counts as anomalous.",
                                number(0, 1000, lo_open=True))
    warmup: int = option(30, "Samples an endpoint must see before it may flag anything.",
                         number(1, MILLION, integer=True))
    performance_prediction: bool = option(True, "Forecast latency per endpoint "
                                          "(x-ml-predicted-latency-ms).", _bool)
    anomaly_detection: bool = option(True, "Score each request against its endpoint's "
                                     "baseline (x-ml-anomaly-score).", _bool)
    max_endpoints: int = option(1000, "Cap on per-endpoint models; beyond it a least "
                                "recently used endpoint is forgotten (CLOCK approximation "
                                "of LRU).", number(1, MILLION, integer=True))
    retention: float = option(3600.0, "Seconds of recent records and detections kept for "
                              "reports and the dashboard.", number(1, YEAR_S))
    aggregation_window: float = option(60.0, "Seconds per aggregation bucket of the "
                                       "per-endpoint time series.", number(1, DAY_S))
    max_recent: int = option(1000, "Cap on recent anomalies/detections kept in memory.",
                             number(1, MILLION, integer=True))
    seasonality: str = option("auto", "Seasonal baselines of the incident series: auto "
                              "(hour-of-day / hour-of-week profiles switched on once enough "
                              "history exists and they explain the spread) | daily | weekly "
                              "| off.", choice("auto", "daily", "weekly", "off"))
    multivariate: bool = option(False, "Train an IsolationForest per endpoint group on a "
                                "reservoir of request feature vectors in the background "
                                "(needs pulsegate[ml]) and blend its score into incidents.",
                                _bool)
    multivariate_interval: float = option(300.0, "Seconds between background trainings and "
                                          "assessments of the multivariate model.",
                                          number(1, WEEK_S))
    multivariate_sample_size: int = option(2048, "Reservoir size (feature vectors kept) per "
                                           "endpoint group for the multivariate model.",
                                           number(16, 100_000, integer=True))
    multivariate_contamination: float = option(0.01, "IsolationForest contamination: the "
                                               "share of training vectors treated as outliers.",
                                               number(0, 0.5, lo_open=True))
    multivariate_weight: float = option(0.5, "Weight w of the multivariate score in the "
                                        "weighted noisy-OR blend with the univariate one: 0 "
                                        "univariate only, 1 multivariate only, 0.5 either "
                                        "can alarm.", number(0, 1))
