"""Optional IsolationForest over client behaviour vectors (the ``ml`` extra).

Trained on the scheduler thread -- never on the request path -- on the feature vectors
of every profile with >= 10 requests (rate / allowance, error ratio, regularity, UA
churn, parameter churn, path diversity). After each fit the current clients are scored
in one batch and each profile gets ``forest = clip((a - 0.55) / 0.15, 0, 1)``, where
``a = -score_samples(x)`` is the anomaly score of Liu et al. (about 0.5 for ordinary
points, towards 1 for isolated ones). :mod:`~pulsegate.control.behaviour` adds it to
the suspicion noisy-OR with weight 0.4, so the forest can tip a borderline client but
never condemns one alone.
"""

from __future__ import annotations

from typing import Any

from pulsegate.control.behaviour import BehaviourModel

MIN_CLIENTS = 50


class ForestScorer:
    def __init__(self, behaviour: BehaviourModel, *, n_estimators: int = 100,
                 max_samples: int = 256, seed: int = 0) -> None:
        from sklearn.ensemble import IsolationForest  # the ml extra; imported lazily

        self.behaviour = behaviour
        self.max_samples = max_samples
        self.model: Any = IsolationForest(n_estimators=n_estimators, max_samples=max_samples,
                                          random_state=seed)
        self.fitted = False
        self.fits = 0

    def run(self) -> int:
        """Fit on the current clients and score them; returns how many were scored
        (0 when fewer than ``MIN_CLIENTS`` clients have enough history)."""
        keys, rows = self.behaviour.vectors()
        if len(rows) < MIN_CLIENTS:
            return 0
        self.model.set_params(max_samples=min(self.max_samples, len(rows)))
        self.model.fit(rows)
        self.fitted = True
        self.fits += 1
        scores = -self.model.score_samples(rows)
        profiles = self.behaviour.profiles
        for key, a in zip(keys, scores, strict=True):
            p = profiles.get(key)
            if p is not None:
                p.forest = min(1.0, max(0.0, (float(a) - 0.55) / 0.15))
        return len(keys)
