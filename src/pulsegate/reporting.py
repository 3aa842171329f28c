"""What a gate answers outside the request path: counters, endpoint summaries, query
insights, feedback on its predictions, and its orderly close. Mixed into
:class:`pulsegate.engine.PulseGate`, whose state it reads; nothing here runs per
request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.scheduler import FINAL_SECONDS, call_within

if TYPE_CHECKING:
    from collections import deque

    from pulsegate.config import Config
    from pulsegate.faults import FaultCounter
    from pulsegate.learn.baseline import BaselineStore
    from pulsegate.plugins import Plugs
    from pulsegate.queries.requests import RequestQueries
    from pulsegate.registry.models import ModelRegistry
    from pulsegate.registry.ops import ModelOps
    from pulsegate.sampling import Sampler, WallOffset
    from pulsegate.scheduler import Scheduler


class GateReports:
    """The reporting half of :class:`~pulsegate.engine.PulseGate`."""

    # what it reads of the gate (PulseGate.__init__ sets each)
    counters: dict[str, int]
    faults: FaultCounter
    baselines: BaselineStore
    queries: RequestQueries
    scheduler: Scheduler
    plugs: Plugs
    control: Any
    ops: ModelOps
    model_version: str
    config: Config
    sampler: Sampler
    wall_offset: WallOffset

    @property
    def wall(self) -> Callable[[], float]:
        """The epoch clock (``wall=``), held by the wall offset."""
        return self.wall_offset.wall

    @property
    def cpu_clock(self) -> Callable[[], float]:
        """The thread CPU clock (``cpu_clock=``), held by the sampler."""
        return self.sampler.cpu_clock

    @property
    def detections(self) -> deque[dict[str, Any]]:
        """The recent query detections, newest last (bounded: ``queries.recent``)."""
        return self.queries.recent

    @property
    def advisor(self) -> Any:
        """Query, workload and capacity advice (:mod:`pulsegate.advisor`) when ``advisor``
        is on, else None."""
        return self.plugs.components.get("advisor")

    @property
    def multivariate(self) -> Any:
        """The multivariate model (``multivariate=True``), else None."""
        return self.plugs.components.get("multivariate")

    @property
    def registry(self) -> ModelRegistry:
        """The model registry (``ops.registry``)."""
        return self.ops.registry

    def attach_advisor(self) -> Any:
        """The advisor ``config.advice`` describes, or None when ``advisor`` is off (the
        gate calls this once, before the registry restores state). A bad
        ``advisor_database`` raises ``ConfigError`` here, at start-up."""
        if not self.config.advisor:
            return None
        from pulsegate.advisor import Advisor
        return Advisor.from_config(self)  # type: ignore[arg-type]

    def query_insights(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Query problems ranked across requests (most total time first); each row has
        kind, fingerprint, sql (redacted), requests, statements, total_ms, mean_count,
        endpoints, call_site, relationship, suggestion, confidence."""
        return self.queries.insights.ranked(limit)

    def feedback(self, detection_id: str, correct: bool) -> bool:
        """Label a prediction (an anomaly, incident or query detection, by its id) as
        correct or not; False when the id is unknown. Feeds accuracy/F1 and tuning."""
        try:
            return self.ops.feedback(detection_id, correct)
        except Exception as exc:
            self.faults.record("feedback", exc)
            return False

    def close(self) -> None:
        """Flush background work and stop the scheduler. The ASGI middleware calls it at
        the lifespan shutdown; WSGI, Flask and Django have no such event, and there the
        registry's ``atexit`` hook takes the final snapshot (``ModelOps.close``).
        Bounded: the jobs get ``scheduler.close_limit`` seconds in all, the final
        snapshot and alert delivery :data:`FINAL_SECONDS` more; a job or a sink that
        hangs is left on its own (daemon) thread."""
        try:
            self.scheduler.close()
        except Exception as exc:
            self.faults.record("close", exc)
        if self.advisor is not None:
            self.advisor.close()  # its own database connection
        if not call_within(self._close_ops, FINAL_SECONDS, "pulsegate-close"):
            self.faults.record("close", TimeoutError(
                f"the final snapshot and alert delivery still run after {FINAL_SECONDS:g} s"))

    def _close_ops(self) -> None:
        try:
            self.ops.close()  # final snapshot, alert delivery
        except Exception as exc:
            self.faults.record("close", exc)

    def stats(self) -> dict[str, Any]:
        """Counters and sizes, cheap to call; the CLI and the dashboard show these."""
        out: dict[str, Any] = dict(self.counters)
        out["internal_errors"] = self.faults.total
        out["internal_errors_by_kind"] = dict(self.faults.by_kind)
        out["endpoints"] = len(self.baselines)
        out["endpoint_evictions"] = self.baselines.evictions
        out["model_version"] = self.model_version
        out["scheduler"] = self.scheduler.stats()  # its jobs' overruns
        # sections registered by the components (control, registry, multivariate, ...)
        for name, source in list(self.plugs.stats.items()):
            out[name] = source.stats()
        # The ORM hooks run outside any engine call and count their own faults.
        from pulsegate.queries.events import hook_faults
        out["query_hook_errors"] = hook_faults.total
        out["query_detections"] = self.queries.detection_count
        out["query_fingerprints"] = len(self.queries.insights)
        return out

    def endpoints(self) -> list[dict[str, Any]]:
        """Per-endpoint baseline summaries, most requested first."""
        rows: list[dict[str, Any]] = []
        for key, model in self.baselines.items():
            predicted, confidence = model.predict()
            rows.append({"endpoint": key, "requests": model.n, "predicted_ms": predicted,
                         "confidence": confidence})
        rows.sort(key=lambda r: -int(r["requests"]))
        return rows
