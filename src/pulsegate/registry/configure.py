"""The registry's default models and how a deployed version is applied to the live
components (thresholds into endpoint models, the limiter, the detector)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.registry.models import ModelVersion
    from pulsegate.registry.ops import ModelOps


#: The component attribute a model's tuned ``threshold`` is written to.
THRESHOLD_ATTRS = {"n1-detector": ("min_confidence",),
                   "rate-limit-behaviour": ("suspicion_threshold",)}


def z_for(score: float, k0: float) -> float:
    """The z at which the score on the k0 scale equals ``score``."""
    score = min(max(score, 0.0), 0.999999)
    return k0 * math.sqrt(score / (1.0 - score))


def rescale(score: float, k_from: float, k_to: float) -> float:
    """An anomaly score computed with threshold ``k_from`` expressed with ``k_to``."""
    if score <= 0.0:
        return 0.0
    if score >= 1.0:
        return 1.0
    z2 = score * k_from * k_from / (1.0 - score)
    return z2 / (z2 + k_to * k_to)


def register_defaults(ops: ModelOps) -> None:
    """The default models with their configured values (tuned ones are kept)."""
    c = ops.config
    ops.registry.register("latency-baseline", {
        "threshold": 0.5, "z_threshold": c.z_threshold, "alpha": c.alpha,
        "warmup": c.warmup}, "per-endpoint exponential smoothing + z-score")
    det = ops.component("n1-detector")
    n1: dict[str, Any] = {"threshold": float(getattr(det, "min_confidence", 0.5))}
    for opt in ("nplusone_min_repeats", "nplusone_min_duration_ms"):
        if hasattr(c, opt):
            n1[opt] = getattr(c, opt)
    ops.registry.register("n1-detector", n1, "N+1 / repeated query / write loop detector")
    lim = ops.component("rate-limit-behaviour")
    rl: dict[str, Any] = {"threshold": float(getattr(lim, "suspicion_threshold", 0.5)),
                          "enabled": c.rate_limiting}
    if hasattr(c, "rate_limit"):
        rl["rate"] = c.rate_limit
    ops.registry.register("rate-limit-behaviour", rl, "per-client behaviour / suspicion")
    ops.registry.register("allocator", {"enabled": c.resource_allocation,
                                         "target_latency_ms": c.target_latency_ms},
                           "Q-learning concurrency allocator", tuned=())
    mv = ops.component("multivariate")
    if mv is not None:
        conf = {k: getattr(c, k) for k in ("multivariate_interval", "multivariate_sample_size",
                                           "multivariate_contamination", "multivariate_weight")
                if hasattr(c, k)}
        ops.registry.register("multivariate", conf,
                               "IsolationForest background model (training version in "
                               "metrics)", tuned=())

def apply(ops: ModelOps, v: ModelVersion) -> None:
    """Make a deployed version's configuration live (called for every deployment)."""
    if v.name == "latency-baseline":
        t = float(v.config.get("threshold", 0.5))
        k0 = ops._k0
        k = z_for(t, k0)
        ops._k = k
        for _, model in ops.gate.baselines.items():
            model.threshold = k
        if not ops._factory_wrapped:
            inner = ops.gate.baselines.factory

            def factory() -> Any:
                m = inner()
                m.threshold = ops._k
                return m

            ops.gate.baselines.factory = factory
            ops._factory_wrapped = True
        lo = ops._grid_lo
        ops._near = rescale(lo, k0, k) if t > lo + 1e-9 else 2.0
        ops.gate.notable_score = min(ops._near, 2.0)
        crit = ops.config.alert_critical_score
        ops._critical = rescale(crit, k0, k) if crit < 1.0 else 2.0
        ops.gate.model_version = v.version
        return
    comp = ops.component(v.name)
    if comp is not None and "threshold" in v.config:
        for attr in THRESHOLD_ATTRS.get(v.name, ()):
            if hasattr(comp, attr):
                setattr(comp, attr, float(v.config["threshold"]))
