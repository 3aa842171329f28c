"""The registry as the dashboard reads it: the models with their accuracy, and the
prediction behind a record or a query detection (what feedback labels).

Registered by :class:`~pulsegate.registry.ops.ModelOps` with ``plugs.set_catalog``: the
dashboard depends on :class:`~pulsegate.plugins.ModelCatalog`, not on the registry's
attributes."""

from __future__ import annotations

from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.registry.feedback import PerformanceMonitor, PredictionLog
from pulsegate.registry.models import ModelRegistry


class RegistryCatalog:
    """:class:`~pulsegate.plugins.ModelCatalog` over one gate's registry parts."""

    def __init__(self, registry: ModelRegistry, monitor: PerformanceMonitor,
                 predictions: PredictionLog,
                 insights: BoundedLRU[str, dict[str, Any]]) -> None:
        self.registry = registry
        self.monitor = monitor
        self.predictions = predictions
        self.insights = insights

    def model_rows(self) -> list[dict[str, Any]]:
        perf = self.monitor.summary()
        rows = [dict(r) for r in self.registry.summaries()]
        for row in rows:
            row["performance"] = perf.get(str(row.get("name")), {})
        return rows

    def query_insights(self) -> list[dict[str, Any]]:
        # list() and dict() are single C calls: a consistent copy while requests add
        return [dict(v) for v in list(self.insights.values())]

    def prediction_id(self, obj: object) -> str | None:
        pid = self.predictions.id_of(obj)
        if pid is None and isinstance(obj, tuple) and len(obj) == 2:
            # A detection row (endpoint, detection): the registry keeps one prediction
            # per endpoint, kind and fingerprint (its "insight").
            endpoint, det = obj
            kind = getattr(det, "kind", None) or "n_plus_one"
            ins = self.insights.get(f"{endpoint}|{kind}|{getattr(det, 'fingerprint', '')}")
            pid = ins.get("id") if isinstance(ins, dict) else None
            if pid is None:
                pid = self.predictions.id_of(det)
        return None if pid is None else str(pid)
