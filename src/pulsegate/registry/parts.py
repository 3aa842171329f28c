""":class:`~pulsegate.registry.ops.ModelOps` as its helper modules see it.

``ModelOps`` is split over a few modules by concern -- what is collected on the request
path (:mod:`.collect`), how a deployed version is applied (:mod:`.configure`), the
periodic jobs (:mod:`.jobs`), snapshots (:mod:`.persist`). Each is a set of functions
of the ``ModelOps`` they are given, typed by the :class:`Ops` protocol, so they do not
import ``ops.py`` (which imports them): the registry has no import circle. The state
types they share live here too: :class:`LatencyThreshold` (with :func:`z_for` and
:func:`rescale`, the score scale) and :class:`Persisted`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulsegate.bounded import BoundedLRU
    from pulsegate.config import Config
    from pulsegate.faults import FaultCounter
    from pulsegate.plugins import Host, Plugs
    from pulsegate.registry.alerts import AlertManager
    from pulsegate.registry.feedback import PerformanceMonitor, Prediction, PredictionLog
    from pulsegate.registry.models import ModelRegistry
    from pulsegate.registry.store import StateStore


def z_for(score: float, k0: float) -> float:
    """The z at which the score on the k0 scale equals ``score``, the score taken in
    [1e-6, 1 - 1e-6] (a threshold of 0 -- a tuning grid from 0, a damaged state --
    would be z = 0, which every floor divides by) and a non-finite one as the default
    0.5 (z = k0).

    >>> z_for(0.5, 3.0), z_for(float("nan"), 3.0), z_for(0.0, 3.0) > 0
    (3.0, 3.0, True)
    """
    score = min(max(score, 1e-6), 0.999999) if math.isfinite(score) else 0.5
    return k0 * math.sqrt(score / (1.0 - score))


def rescale(score: float, k_from: float, k_to: float) -> float:
    """An anomaly score computed with threshold ``k_from`` expressed with ``k_to``."""
    if score <= 0.0:
        return 0.0
    if score >= 1.0:
        return 1.0
    z2 = score * k_from * k_from / (1.0 - score)
    return z2 / (z2 + k_to * k_to)


class LatencyThreshold:
    """The latency model's tuned threshold :math:`t` as the per-endpoint :math:`k`, and
    the two floors that follow it: near misses (scores from the tuning grid's lowest
    candidate up are worth a prediction) and critical alerts (``alert_critical_score``),
    both on the current scale. 2.0 means "none" (no score reaches it), as does a
    ``critical_score`` of None or 1."""

    def __init__(self, k0: float, grid_lo: float, critical_score: float | None) -> None:
        self.k0 = self.k = k0
        self.grid_lo = grid_lo
        self.critical_score = critical_score
        self.near = 2.0
        self.critical = 2.0

    def deploy(self, t: float) -> None:
        k0 = self.k0
        k = self.k = z_for(t, k0)
        self.near = rescale(self.grid_lo, k0, k) if t > self.grid_lo + 1e-9 else 2.0
        crit = self.critical_score
        self.critical = rescale(crit, k0, k) if crit is not None and crit < 1.0 else 2.0

    def score0(self, score: float) -> float:
        """A request's score on the configured scale (labels stay comparable)."""
        return rescale(score, self.k, self.k0)


@dataclass
class Persisted:
    """What this worker knows of its rows in the store, between snapshots."""

    #: Request count of each endpoint at the last snapshot (unchanged ones are skipped).
    written_n: dict[str, int] = field(default_factory=dict)
    #: Request count each endpoint was seeded with (restored, or inherited by a fork):
    #: this worker's own requests are the rest.
    seed: dict[str, int] = field(default_factory=dict)
    #: Rewrite every row on the next snapshot (the store may have lost data).
    full_write: bool = False
    #: Workers whose merged rows seeded this one (dropped once ours are written).
    absorb: list[str] = field(default_factory=list)
    loaded_at: float = 0.0
    #: Component states read at start-up whose provider has not registered yet.
    pending: dict[str, Any] = field(default_factory=dict)


class Ops(Protocol):
    """The state and services of one gate's model operations."""

    @property
    def gate(self) -> Host: ...

    @property
    def plugs(self) -> Plugs: ...

    @property
    def config(self) -> Config: ...

    @property
    def faults(self) -> FaultCounter: ...

    @property
    def wall(self) -> Callable[[], float]: ...

    @property
    def worker(self) -> str: ...

    @property
    def started(self) -> float: ...

    @property
    def store(self) -> StateStore | None: ...

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def predictions(self) -> PredictionLog: ...

    @property
    def monitor(self) -> PerformanceMonitor: ...

    @property
    def alerts(self) -> AlertManager: ...

    @property
    def latency(self) -> LatencyThreshold: ...

    @property
    def persisted(self) -> Persisted: ...

    @property
    def insights(self) -> BoundedLRU[str, dict[str, Any]]: ...

    @property
    def insights_dirty(self) -> set[str]: ...

    @property
    def throttle_seen(self) -> BoundedLRU[str, float]: ...

    @property
    def foreign_labels(self) -> deque[tuple[str, bool, float]]: ...

    def label(self, p: Prediction, correct: bool, at: float) -> None: ...

    def sync_labels(self) -> None: ...

    def target(self, model: str) -> float: ...
