"""Online models of endpoint behaviour (pure Python, O(1) per update)."""

from pulsegate.learn.anomaly import AnomalyModel, Score
from pulsegate.learn.baseline import BaselineStore
from pulsegate.learn.endpoint import METRICS, EndpointModel, EndpointScore

__all__ = ["METRICS", "AnomalyModel", "BaselineStore", "EndpointModel", "EndpointScore", "Score"]
