r"""Threshold auto-tuning from labelled feedback.

Each tunable model flags a prediction when its score reaches a threshold :math:`t`.
Given the labelled predictions of a time window, each a score :math:`s_j` and a truth
:math:`y_j`, the F1 of a candidate threshold is that of the rule
:math:`\hat y_j = [s_j \ge t]`. A grid search (default :math:`t \in \{0.50, 0.55,
\dots, 0.90\}`) finds the best candidate :math:`t^*`; it replaces the current threshold
only when

* there are at least ``min_labels`` labels in the window, and
* the gain is real: :math:`F_1(t^*) > (1 + \text{min\_improvement})\,F_1(t_{cur})`
  (with :math:`F_1(t_{cur}) = 0`, any positive :math:`F_1(t^*)` qualifies).

Among equally good candidates the one closest to the current threshold wins, so noise
does not make the threshold wander. A change is a new registry version (logged on
``pulsegate.registry``), so ``rollback`` undoes it.

Labels cover what users saw. Predictions below the current threshold are mostly
unseen, so lowering the threshold is only supported by labels on such predictions (the
near misses the engine also logs, and missed detections reported as negatives).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pulsegate.registry.feedback import Label, PerformanceMonitor, metrics_of
from pulsegate.registry.models import ModelRegistry, ModelVersion

logger = logging.getLogger("pulsegate.registry")


def grid(lo: float = 0.5, hi: float = 0.9, step: float = 0.05) -> list[float]:
    """``lo, lo+step, ..., hi`` (inclusive, rounded to avoid float drift)."""
    if step <= 0 or hi < lo:
        raise ValueError("need step > 0 and hi >= lo")
    n = round((hi - lo) / step)
    return [round(lo + i * step, 10) for i in range(n + 1)]


def f1_at(samples: Sequence[Label], threshold: float) -> float:
    m = metrics_of((lb.score >= threshold, lb.actual) for lb in samples)
    return m.f1 or 0.0


def best_threshold(samples: Sequence[Label], candidates: Sequence[float],
                   current: float) -> tuple[float, float]:
    """(threshold, F1) maximising F1; ties go to the candidate nearest ``current``."""
    best_t, best_f = current, -1.0
    for t in candidates:
        f = f1_at(samples, t)
        if f > best_f + 1e-12 or (abs(f - best_f) <= 1e-12 and abs(t - current) < abs(best_t - current)):
            best_t, best_f = t, f
    return best_t, best_f


@dataclass
class TuningResult:
    model: str
    samples: int
    current: float
    current_f1: float
    best: float
    best_f1: float
    applied: ModelVersion | None
    reason: str


class ThresholdTuner:
    """Grid-searches the ``threshold`` of each registry model from its labels."""

    def __init__(self, registry: ModelRegistry, monitor: PerformanceMonitor, *,
                 wall: Callable[[], float], min_labels: int = 50,
                 min_improvement: float = 0.05, window: float = 86400.0,
                 candidates: Sequence[float] | None = None,
                 kinds: dict[str, tuple[str, ...]] | None = None) -> None:
        self.registry = registry
        self.monitor = monitor
        self.wall = wall
        self.min_labels = min_labels
        self.min_improvement = min_improvement
        self.window = window
        self.candidates = list(candidates) if candidates is not None else grid()
        #: Which prediction kinds each model's threshold applies to (default: all).
        self.kinds = kinds or {}
        self.history: list[TuningResult] = []

    def tune(self, model: str) -> TuningResult:
        version = self.registry.active(model)
        current = float(version.config.get("threshold", self.candidates[0]))
        samples = self.monitor.samples(model, since=self.wall() - self.window,
                                       kinds=self.kinds.get(model))
        cur_f1 = f1_at(samples, current)
        if len(samples) < self.min_labels:
            return self._done(TuningResult(model, len(samples), current, cur_f1, current,
                                           cur_f1, None, "not enough labels"))
        best, best_f1 = best_threshold(samples, self.candidates, current)
        gain_ok = best_f1 > cur_f1 * (1.0 + self.min_improvement) if cur_f1 > 0 else best_f1 > 0
        if best == current or not gain_ok:
            return self._done(TuningResult(model, len(samples), current, cur_f1, best,
                                           best_f1, None, "no significant improvement"))
        note = (f"auto-tuned threshold {current:g} -> {best:g}: F1 {cur_f1:.3f} -> "
                f"{best_f1:.3f} on {len(samples)} labels")
        applied = self.registry.update(model, {"threshold": best}, note=note)
        logger.info("pulsegate: %s %s (version %s)", model, note, applied.version,
                    extra={"pulsegate_model": model, "pulsegate_version": applied.version,
                           "pulsegate_threshold": best, "pulsegate_f1": best_f1})
        return self._done(TuningResult(model, len(samples), current, cur_f1, best, best_f1,
                                       applied, "applied"))

    def tune_all(self) -> list[TuningResult]:
        out = []
        for name in self.registry.names():
            if "threshold" in self.registry.active(name).config:
                out.append(self.tune(name))
        return out

    def _done(self, r: TuningResult) -> TuningResult:
        self.history.append(r)
        del self.history[:-100]
        return r
