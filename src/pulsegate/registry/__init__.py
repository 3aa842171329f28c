"""Model management: registry of versions, persistence, feedback, tuning and alerts."""

from pulsegate.registry.alerts import Alert, AlertManager
from pulsegate.registry.feedback import Metrics, PerformanceMonitor, Prediction, PredictionLog
from pulsegate.registry.merge import chan_merge, merge_endpoint_states, welford
from pulsegate.registry.models import DEFAULT_MODELS, ModelRegistry, ModelVersion, UnknownModel
from pulsegate.registry.store import RedisStore, SQLiteStore, StateStore, open_store
from pulsegate.registry.tuning import ThresholdTuner, best_threshold, grid

__all__ = [
    "DEFAULT_MODELS", "Alert", "AlertManager", "Metrics", "ModelRegistry", "ModelVersion",
    "PerformanceMonitor", "Prediction", "PredictionLog", "RedisStore", "SQLiteStore",
    "StateStore", "ThresholdTuner", "UnknownModel", "best_threshold", "chan_merge", "grid",
    "merge_endpoint_states", "open_store", "welford",
]
