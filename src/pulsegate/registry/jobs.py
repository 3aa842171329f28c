r"""The periodic model-management jobs, run on the gate's scheduler thread.

* monitoring (``monitoring_interval``, 5 min): accuracy, precision, recall and F1 over
  the last 100 labels recorded on the active version; the first measurement of a version
  with ``monitor_min_labels`` labels becomes its ``baseline_*``; an ``accuracy`` alert
  when accuracy is under the model's target. It also records the multivariate model's
  training version.
* degradation (``degradation_interval``, 15 min): a ``degradation`` alert when
  :math:`(b - c)/b \ge` ``degradation_threshold`` for the baseline F1 :math:`b` and the
  current one :math:`c` (accuracy when F1 is undefined).
* cleanup (``cleanup_interval``, daily): drop the rows of workers silent for
  ``state_ttl``, trim persisted predictions and labels to their caps.
* retention (every ``min(60 s, retention / 10)``): forget recent anomalous records and
  query detections older than ``retention`` (reports, the dashboard).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.records import RequestRecord
    from pulsegate.registry.parts import Ops


def monitoring(ops: Ops) -> None:
    """Record each model's metrics on its active version; alert under target."""
    if ops.store is not None:
        ops.sync_labels()
    c = ops.config.registry
    for name in ops.monitor.models():
        if name not in ops.registry:
            continue
        m = ops.monitor.metrics(name, 100)
        if m.n < c.monitor_min_labels:
            continue
        metrics: dict[str, Any] = {"accuracy": m.accuracy, "precision": m.precision,
                                   "recall": m.recall, "f1": m.f1, "labels": m.n,
                                   "measured_at": ops.wall()}
        v = ops.registry.active(name)
        if "baseline_accuracy" not in v.metrics:
            metrics.update(baseline_accuracy=m.accuracy, baseline_f1=m.f1)
        ops.registry.set_metrics(name, metrics)
        target = ops.target(name)
        if m.accuracy is not None and m.accuracy < target:
            ops.alerts.raise_alert(
                "accuracy", name, "warning",
                f"pulsegate: {name} accuracy {m.accuracy:.3f} is under its target "
                f"{target:.3f} (last {m.n} labels)", accuracy=m.accuracy, target=target,
                version=v.version)
    mv = ops.plugs.stats.get("multivariate")
    if mv is not None and "multivariate" in ops.registry:
        trained = str(mv.stats().get("version", ""))
        if ops.registry.active("multivariate").metrics.get("trained") != trained:
            # A retraining is recorded, not versioned: it happens every few minutes.
            ops.registry.set_metrics("multivariate", {"trained": trained,
                                                      "trained_seen_at": ops.wall()})


def degradation(ops: Ops) -> None:
    """Alert when F1 (else accuracy) fell >= degradation_threshold vs the baseline."""
    c = ops.config.registry
    for name in ops.monitor.models():
        if name not in ops.registry:
            continue
        v = ops.registry.active(name)
        m = ops.monitor.metrics(name, 100)
        if m.n < c.monitor_min_labels:
            continue
        base, cur, what = v.metrics.get("baseline_f1"), m.f1, "F1"
        if base is None or cur is None:
            base, cur, what = v.metrics.get("baseline_accuracy"), m.accuracy, "accuracy"
        if not base or cur is None:
            continue
        drop = (float(base) - cur) / float(base)
        if drop >= c.degradation_threshold:
            ops.alerts.raise_alert(
                "degradation", name, "warning",
                f"pulsegate: {name} {what} degraded {drop:.1%} ({float(base):.3f} -> "
                f"{cur:.3f}) since version {v.version} was measured", baseline=base,
                current=cur, metric=what, drop=drop, version=v.version)


def forget_old(records: deque[RequestRecord], detections: deque[dict[str, Any]],
               before: float) -> int:
    """Drop recent anomalous records and query detections from before ``before`` (wall
    seconds): ``retention``. Both deques are in time order, so only their left ends are
    looked at; request threads append on the right meanwhile. Returns how many went."""
    dropped = 0
    try:
        while records and records[0].started_at < before:
            records.popleft()
            dropped += 1
        while detections and float(detections[0].get("at", 0.0)) < before:
            detections.popleft()
            dropped += 1
    except IndexError:  # emptied by the deque's own bound meanwhile
        pass
    return dropped


def cleanup(ops: Ops) -> None:
    """Forget silent workers' statistics and trim predictions/labels."""
    store = ops.store
    if store is None:
        return
    now, c, ttl = ops.wall(), ops.config.registry, ops.config.persistence.state_ttl
    workers = store.read("workers")
    dead = [w for w, r in workers.items() if w != ops.worker and
            (not isinstance(r, dict) or now - float(r.get("updated", 0)) > ttl)]
    drops = [f"{p}:{w}" for w in dead for p in ("ep", "insights")]
    deletes = [("workers", w) for w in dead]
    preds = store.read("predictions")
    if len(preds) > c.max_predictions:
        order = sorted(preds, key=lambda k: float(preds[k].get("at", 0)))
        deletes += [("predictions", k) for k in order[:len(preds) - c.max_predictions]]
    labels = store.read("labels")
    by_model: dict[str, list[str]] = {}
    for k, row in labels.items():
        by_model.setdefault(str(row.get("model")), []).append(k)
    for keys in by_model.values():
        if len(keys) > c.max_labels:
            keys.sort(key=lambda k: float(labels[k].get("labelled_at", 0)))
            deletes += [("labels", k) for k in keys[:len(keys) - c.max_labels]]
    if drops or deletes:
        store.write(deletes=deletes, drop_sections=drops)
