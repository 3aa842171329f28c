"""The registry's default models and how a deployed version is applied to the live
components: the latency model's threshold into the gate's endpoint models, any other
model's tuned ``threshold`` into the :class:`~pulsegate.plugins.Tunable` its component
registered under the model's name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.registry.models import ModelVersion
    from pulsegate.registry.parts import Ops


def _threshold(ops: Ops, model: str, default: float = 0.5) -> float:
    tunable = ops.plugs.tunables.get(model)
    return tunable.get() if tunable is not None else default


def register_defaults(ops: Ops) -> None:
    """The default models with their configured values (tuned ones are kept)."""
    m, q, c = ops.config.model, ops.config.queries, ops.config.control
    ops.registry.register("latency-baseline", {
        "threshold": 0.5, "z_threshold": m.z_threshold, "alpha": m.alpha,
        "warmup": m.warmup}, "per-endpoint exponential smoothing + z-score")
    n1: dict[str, Any] = {"threshold": _threshold(ops, "n1-detector"),
                          "nplusone_min_repeats": q.nplusone_min_repeats,
                          "nplusone_min_duration_ms": q.nplusone_min_duration_ms}
    ops.registry.register("n1-detector", n1, "N+1 / repeated query / write loop detector")
    rl: dict[str, Any] = {"threshold": _threshold(ops, "rate-limit-behaviour"),
                          "enabled": c.rate_limiting, "rate": c.rate_limit}
    ops.registry.register("rate-limit-behaviour", rl, "per-client behaviour / suspicion")
    ops.registry.register("allocator", {"enabled": c.resource_allocation,
                                         "target_latency_ms": c.target_latency_ms},
                           "Q-learning concurrency allocator", tuned=())
    if "multivariate" in ops.plugs.stats:
        conf = {"multivariate_interval": m.multivariate_interval,
                "multivariate_sample_size": m.multivariate_sample_size,
                "multivariate_contamination": m.multivariate_contamination,
                "multivariate_weight": m.multivariate_weight}
        ops.registry.register("multivariate", conf,
                               "IsolationForest background model (training version in "
                               "metrics)", tuned=())


def apply(ops: Ops, v: ModelVersion) -> None:
    """Make a deployed version's configuration live (called for every deployment)."""
    if v.name == "latency-baseline":
        latency = ops.latency
        latency.deploy(float(v.config.get("threshold", 0.5)))
        host = ops.gate
        host.baselines.set_threshold(latency.k)
        host.notable_score = min(latency.near, 2.0)
        host.model_version = v.version
        return
    tunable = ops.plugs.tunables.get(v.name)
    if tunable is not None and "threshold" in v.config:
        tunable.set(float(v.config["threshold"]))
