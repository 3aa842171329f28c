"""Model operations for one gate: registry, feedback, tuning, alerts, snapshots.

``PulseGate`` builds one :class:`ModelOps` at construction (``gate.ops``, with
``gate.registry`` and ``gate.feedback`` as the public shortcuts). It

* warm-starts the gate from the configured store (endpoint baselines merged across
  workers, registry versions, labels, component states);
* gives every prediction that can receive feedback a stable id, from a listener on the
  request path that does two comparisons unless something was detected;
* registers the periodic jobs on ``gate.scheduler``: snapshot, alert delivery,
  monitoring, degradation, tuning and clean-up -- never any I/O on the request path.

It sees the gate only as a :class:`~pulsegate.plugins.Host`, and the other components
only through what they registered on ``gate.plugs`` (state providers, tunables, scores,
stats sources); it registers itself as the gate's model catalog. It does not import the
engine.

The latency model's tunable ``threshold`` is on the anomaly-score scale of the
*configured* ``z_threshold`` :math:`k_0`: :math:`t = 0.5` means :math:`|z| > k_0`, and
a threshold :math:`t` is applied as the per-endpoint :math:`k = k_0\\sqrt{t/(1-t)}`
(since :math:`s = z^2/(z^2+k_0^2) \\ge t \\iff z \\ge k`). Scores recorded for feedback
are converted to that fixed scale, so labels stay comparable across threshold changes.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import socket
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU, newest
from pulsegate.control.breaker import CircuitBreaker
from pulsegate.incidents import describe
from pulsegate.registry import collect, configure, jobs, persist
from pulsegate.registry import snapshot as snap
from pulsegate.registry.alerts import AlertManager
from pulsegate.registry.catalog import RegistryCatalog
from pulsegate.registry.feedback import Label, PerformanceMonitor, Prediction, PredictionLog
from pulsegate.registry.models import ModelRegistry, ModelVersion
from pulsegate.registry.parts import LatencyThreshold, Persisted
from pulsegate.registry.store import StateStore, open_store
from pulsegate.registry.tuning import ThresholdTuner, grid
from pulsegate.scheduler import FINAL_SECONDS, call_within

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host
    from pulsegate.records import RequestRecord


#: Seconds between two near-miss predictions of one endpoint.
NEAR_MISS_EVERY = 10.0

#: A prediction id: six hex characters of process tag, a dash, a hex counter.
_ID = re.compile(r"[0-9a-f]{6}-[0-9a-f]{1,12}")

_ALL: weakref.WeakSet[ModelOps] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ops in list(_ALL):
        ops.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(ref: weakref.ReferenceType[ModelOps]) -> None:
    ops = ref()
    if ops is not None:  # bounded: an alert sink that hangs must not keep the process
        call_within(ops.close, FINAL_SECONDS, "pulsegate-exit")


class ModelOps:
    def __init__(self, gate: Host) -> None:
        self.gate = gate
        self.plugs = gate.plugs
        self.config = gate.config
        c, p = gate.config.registry, gate.config.persistence
        self.faults = gate.faults
        self.wall = gate.wall
        self.registry = ModelRegistry(gate.wall, on_change=self._apply)
        self.predictions = PredictionLog(c.max_predictions)
        self.worker = self._worker_id()
        self.started = gate.wall()
        self.monitor = PerformanceMonitor(c.max_labels)
        lo, hi, step = c.tuning_grid
        self.tuner = ThresholdTuner(
            self.registry, self.monitor, wall=gate.wall, min_labels=c.tuning_min_labels,
            min_improvement=c.tuning_min_improvement, window=c.tuning_window,
            candidates=grid(lo, hi, step), kinds={"latency-baseline": ("request",)})
        self.alerts = AlertManager(wall=gate.wall, faults=gate.faults,
                                   callback=c.alert_callback, webhook=c.alert_webhook,
                                   cooldown=c.alert_cooldown)
        #: Query detections aggregated per ``endpoint|kind|fingerprint`` (bounded LRU).
        self.insights: BoundedLRU[str, dict[str, Any]] = BoundedLRU(collect.MAX_INSIGHTS)
        #: Insights changed since the last snapshot.
        self.insights_dirty: set[str] = set()
        #: The latency model's tuned threshold and the floors that follow it.
        self.latency = LatencyThreshold(gate.config.model.z_threshold, lo,
                                        c.alert_critical_score)
        self._anoms_seen = gate.counters.get("anomalies", 0)
        self._incidents_seen = gate.counters.get("incidents", 0)
        #: Last throttle prediction per client / near miss per endpoint (rate-limited).
        self.throttle_seen: BoundedLRU[str, float] = BoundedLRU(1000)
        self._near_seen: BoundedLRU[str, float] = BoundedLRU(1000)
        self.persisted = Persisted()
        self.snapshots = self.snapshot_failures = 0
        self.last_snapshot_at: float | None = None
        self._snapshot_lock = threading.Lock()
        self._closed = False
        #: Feedback for ids made by other workers: (id, correct, at), resolved in the store.
        self.foreign_labels: deque[tuple[str, bool, float]] = deque(maxlen=1000)
        self.store: StateStore | None = None
        #: Two failed snapshots in a row open it: while the store (Redis) is down the
        #: scheduler thread does not wait on connect timeouts, it skips the store.
        self.breaker = CircuitBreaker(2, max(30.0, 5 * p.snapshot_interval), clock=gate.clock)
        try:
            self.store = open_store(p.state_dir, p.state_redis_url, p.state_namespace, gate.wall)
        except Exception as exc:
            self.faults.record("registry.open_store", exc)
        if self.store is not None:
            self._guard("registry.restore_models",
                        lambda: self.registry.merge(self.store.read("models")))  # type: ignore[union-attr]
        self._register_defaults()
        if self.store is not None:
            self._guard("registry.restore", self.restore)
        self.plugs.on_state_added.append(self._state_added)
        self.plugs.add_stats("registry", self)
        self.plugs.set_catalog(RegistryCatalog(self.registry, self.monitor, self.predictions,
                                               self.insights))
        gate.notable_listeners.append(self.on_request)
        _ALL.add(self)
        self._schedule()
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def _worker_id(self) -> str:
        return f"{socket.gethostname()}-{os.getpid()}-{self.predictions.tag}"

    def after_fork(self) -> None:
        """In a forked child (gunicorn --preload): a worker of its own, with its own ids,
        rows and locks; the models inherited from the parent are its seed."""
        self.predictions.retag()
        self.worker = self._worker_id()
        self.started = self.wall()
        self.persisted.seed = {k: m.n for k, m in self.gate.baselines.items()}
        self.persisted.written_n = {}
        self._snapshot_lock = threading.Lock()
        self.monitor.lock = threading.Lock()
        self.registry.lock = threading.RLock()
        self.alerts.lock = threading.Lock()

    def _guard(self, where: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            self.faults.record(where, exc)
            return None

    # --- components and models ----------------------------------------------------

    def component(self, name: str) -> Any:
        """The state provider registered under ``name`` (None if there is none)."""
        return self.plugs.states.get(name)

    def _state_added(self, name: str) -> None:
        # a component registered after start-up read the store: give it its state now
        if name in self.persisted.pending:
            persist.restore_components(self)

    def _register_defaults(self) -> None:
        configure.register_defaults(self)

    def _apply(self, v: ModelVersion) -> None:
        """Make a deployed version's configuration live."""
        configure.apply(self, v)

    # --- the request path: register predictions -----------------------------------

    def on_request(self, record: RequestRecord, ctx: RequestContext) -> None:
        """Notable-request listener (anomalies, near misses, incidents, detections,
        throttles): the engine calls it only when one of them happened."""
        counters = self.gate.counters
        if counters["anomalies"] != self._anoms_seen:
            self._on_anomalies()
        elif record.anomaly_score >= self.latency.near:
            self._on_near_miss(record)
        if counters["incidents"] != self._incidents_seen:
            self._on_incidents()
        if record.detections:
            self._on_detections(record, ctx)
        if record.optimization == "throttle":
            self._on_throttle(record)

    def _score0(self, record: RequestRecord) -> float:
        return self.latency.score0(record.anomaly_score)

    def _on_anomalies(self) -> None:
        n = self.gate.counters["anomalies"]
        new = min(n - self._anoms_seen, 16)
        self._anoms_seen = n
        for r in newest(self.gate.recent_anomalies, new):
            if self.predictions.id_of(r) is not None:
                continue
            s0 = self._score0(r)
            self.predictions.add("latency-baseline", "request", s0, True, r.started_at,
                                 collect.record_summary(r), obj=r)
            if r.anomaly_score >= self.latency.critical:
                self.alerts.raise_alert(
                    "critical_anomaly", r.endpoint, "critical",
                    f"pulsegate: critical anomaly on {r.endpoint}: "
                    f"{r.unusual or 'latency'}: {r.duration_ms:.1f} ms (forecast "
                    f"{r.predicted_ms or 0:.1f} ms), {r.query_count} queries, score {s0:.2f}",
                    **collect.record_summary(r))

    def _on_near_miss(self, record: RequestRecord) -> None:
        # At most one near miss per endpoint per NEAR_MISS_EVERY seconds: a high tuned
        # threshold must not let them crowd real anomalies out of the bounded log.
        key, now = record.endpoint, record.started_at
        last = self._near_seen.get(key)
        if not self.gate.config.model.anomaly_detection or (last is not None and
                                                      now - last < NEAR_MISS_EVERY):
            return
        self._near_seen.put(key, now)
        self.predictions.add("latency-baseline", "request", self._score0(record), False,
                             now, collect.record_summary(record), obj=record)

    def _on_incidents(self) -> None:
        n = self.gate.counters["incidents"]
        new = min(n - self._incidents_seen, 16)
        self._incidents_seen = n
        for inc in newest(self.gate.incidents, new):
            if "id" in inc:
                continue
            score = float(inc.get("score", 0.0))
            p = self.predictions.add("latency-baseline", "incident", score, True,
                                     float(inc.get("at", self.wall())),
                                     {k: v for k, v in inc.items() if k != "id"})
            inc["id"] = p.id
            # an incident is already the detector's considered verdict (evidence over
            # windows, issue 16): it alerts whatever its score; the request-level
            # alert_critical_score is for single requests
            self.alerts.raise_alert(
                "incident", str(inc.get("endpoint")), "critical",
                f"pulsegate: incident on {inc.get('endpoint')}: {describe(inc)}",
                **p.summary)

    def _on_detections(self, record: RequestRecord, ctx: RequestContext) -> None:
        collect.detections(self, record, ctx)

    def observe_detection(self, endpoint: str, det: Any, at: float) -> str:
        """Aggregate one query detection (a Detection or a dict) into the insights and
        return its prediction id: one per endpoint, kind and fingerprint while kept."""
        return collect.observe_detection(self, endpoint, det, at)

    def _on_throttle(self, record: RequestRecord) -> None:
        collect.throttle(self, record)

    # --- feedback ------------------------------------------------------------------

    def feedback(self, prediction_id: str, correct: bool) -> bool:
        """Label a prediction; False when the id is unknown (or too old to be kept).

        With a shared store, an id made by another worker (the dashboard request may
        reach any worker) is accepted and queued: the next snapshot, on the scheduler
        thread, finds it in the store and writes the label there for its owner."""
        p = self.predictions.get(prediction_id)
        if p is None:
            if self.store is not None and _ID.fullmatch(prediction_id) and \
                    not prediction_id.startswith(self.predictions.tag + "-"):
                self.foreign_labels.append((prediction_id, bool(correct), self.wall()))
                return True
            return False
        self.label(p, bool(correct), self.wall())
        return True

    def label(self, p: Prediction, correct: bool, at: float) -> None:
        p.correct, p.labelled_at = correct, at
        actual = p.predicted if correct else not p.predicted
        self.monitor.record(p.model, Label(p.id, p.kind, p.score, p.predicted, actual, p.at))
        with self.predictions.lock:
            self.predictions.dirty.add(p.id)

    # --- scheduling, jobs -------------------------------------------------------------

    def _schedule(self) -> None:
        c, s = self.config.registry, self.gate.scheduler
        if self.store is not None:
            s.every(self.config.persistence.snapshot_interval, self.snapshot,
                    "pulsegate.snapshot")
        s.every(5.0, self.alerts.flush, "pulsegate.alerts")
        s.every(c.monitoring_interval, self.monitoring_job, "pulsegate.monitoring")
        s.every(c.degradation_interval, self.degradation_job, "pulsegate.degradation")
        if c.auto_tuning:
            s.every(c.tuning_interval, self.tuning_job, "pulsegate.tuning")
        s.every(self.config.persistence.cleanup_interval, self.cleanup_job, "pulsegate.cleanup")
        # ``retention`` bounds recent records and detections by age (max_recent by count).
        s.every(min(60.0, self.config.model.retention / 10), self.retention_job,
                "pulsegate.retention")

    def target(self, model: str) -> float:
        c = self.config.registry
        return float(c.accuracy_targets.get(model, c.accuracy_target))

    def monitoring_job(self) -> None:
        """Record each model's metrics on its active version; alert under target."""
        jobs.monitoring(self)

    def degradation_job(self) -> None:
        """Alert when F1 (else accuracy) fell >= degradation_threshold vs the baseline."""
        jobs.degradation(self)

    def tuning_job(self) -> list[Any]:
        return self.tuner.tune_all()

    def retention_job(self) -> None:
        """Forget recent anomalies and detections older than ``retention`` seconds."""
        jobs.forget_old(self.gate.recent_anomalies, self.gate.detections,
                        self.wall() - self.config.model.retention)

    def cleanup_job(self) -> None:
        """Forget silent workers' statistics and trim persisted predictions/labels."""
        if self.breaker.allow():
            with self.breaker.guard():  # resolved whatever happens (a half-open trial)
                jobs.cleanup(self)

    # --- persistence --------------------------------------------------------------------

    def snapshot(self) -> None:
        """Write this worker's state (one atomic batch), then pick up versions deployed
        elsewhere (another worker's tuning, a CLI rollback)."""
        if self.store is None or not self.breaker.allow():
            return
        with self._snapshot_lock, self.breaker.guard():
            persist.restore_components(self)
            try:
                persist.write_snapshot(self)
                self.registry.merge(self.store.read("models"))
                if self.foreign_labels:
                    persist.label_foreign(self)
            except Exception:
                self.snapshot_failures += 1
                # The store may have lost data meanwhile (a Redis restart without
                # persistence): the next successful snapshot rewrites everything.
                self.persisted.written_n, self.persisted.full_write = {}, True
                raise
            self.snapshots += 1
            self.last_snapshot_at = self.wall()

    def restore(self) -> None:
        persist.restore(self)

    def sync_labels(self) -> None:
        """Feed labels written by other workers or the CLI into this worker's monitor."""
        if self.breaker.allow():
            with self.breaker.guard():
                persist.sync_labels(self)

    def close(self) -> None:
        """Final snapshot and alert delivery; idempotent (gate.close() and atexit)."""
        if self._closed:
            return
        self._closed = True
        try:
            atexit.unregister(self._atexit)
        except Exception:
            pass
        self._guard("registry.close_alerts", self.alerts.flush)
        if self.store is not None:
            self._guard("registry.snapshot", self.snapshot)
            self._guard("registry.close_store", self.store.close)

    # --- reporting ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """For ``gate.stats()["registry"]``: store, snapshots, predictions, alerts."""
        return {"store": None if self.store is None else self.store.kind,
                "snapshots": self.snapshots, "snapshot_failures": self.snapshot_failures,
                "last_snapshot_at": self.last_snapshot_at, "breaker": self.breaker.state,
                "predictions": len(self.predictions),
                "labels": sum(self.monitor.metrics(m).n for m in self.monitor.models()),
                "alerts": len(self.alerts.recent), "alerts_suppressed": self.alerts.suppressed,
                "alerts_unposted": self.alerts.unposted,
                "alerts_webhook_dropped": self.alerts.webhook_dropped,
                "versions": {n: self.registry.active(n).version for n in self.registry.names()}}

    def recent_predictions(self, limit: int = 50, model: str | None = None,
                           kind: str | None = None) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.predictions.recent(limit, model, kind)]

    def ranked_insights(self) -> list[dict[str, Any]]:
        return snap.ranked_insights(list(self.insights.values()), self.wall())
