"""A job's record on OpenTelemetry (:mod:`pulsegate.export.otel`): the span attributes of
a record (a request's or a job's), and where a JOB run's go.

Inline (``job_learning="inline"``) a run is learnt on the job's thread as its body
returns, while the job's span -- the task's own, ``run/<task>``, under
``opentelemetry-instrumentation-celery`` -- is still current and open: the attributes go
on it. In the background the scheduler thread learns the run up to 0.5 s later, when
that span has usually ended (Celery's instrumentation ends it in ``task_postrun``, right
after the body), and OpenTelemetry drops what is set on an ended span. So the job's
thread keeps the context the job started in (``opentelemetry.context.get_current``, read
as the job starts: ``gate.plugs.trace_context``), and the drain makes from it a **child
span of the job's span**: ``pulsegate JOB <name>``, kind ``INTERNAL``, from the body's
start to its end as pulsegate measured them (wall clock), with the same attributes and
detection and incident events the job's span gets inline. It sits under the task's span
in the same trace, the way any span made inside the task would.

Why a child span: an ended span takes nothing more; a span *link* would put the record
in a trace of its own, found only from the link; a log record needs a logs pipeline
most deployments of OpenTelemetry's Python SDK do not have. The child is sampled as the
job's span was (the SDK's default sampler follows the parent), and none is made when the
job started outside any span (pulsegate makes no trace of its own) or when
``trace_context`` is not OpenTelemetry's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.records import RequestRecord

__all__ = ["SPAN_PREFIX", "JobSpans", "job_attributes", "record_attributes"]

#: The name of the child span is this, then the job's endpoint key (``JOB <name>``).
SPAN_PREFIX = "pulsegate "


def record_attributes(record: RequestRecord) -> dict[str, Any]:
    """The model's figures on a request's or a job's span: score, confidence, queries,
    and the forecast, the metric that rose and the N+1 count when there are some."""
    attrs: dict[str, Any] = {
        "pulsegate.anomaly_score": round(record.anomaly_score, 4),
        "pulsegate.confidence": round(record.confidence, 2),
        "pulsegate.query_count": record.query_count}
    if record.predicted_ms is not None:
        attrs["pulsegate.predicted_latency_ms"] = round(record.predicted_ms, 3)
    if record.anomaly_metric is not None:
        attrs["pulsegate.anomaly_metric"] = record.anomaly_metric
    if record.detections:
        attrs["pulsegate.nplusone"] = record.detections
    return attrs


def job_attributes(record: RequestRecord, run: RequestContext) -> dict[str, Any]:
    """The span attributes of a JOB run: a request's figures plus ``pulsegate.job.*``."""
    attrs = record_attributes(record)
    attrs["pulsegate.job.name"] = record.route
    attrs["pulsegate.job.outcome"] = getattr(run, "outcome", None) or "success"
    attrs["pulsegate.job.retries"] = int(getattr(run, "retries", 0) or 0)
    wait = getattr(run, "queue_wait_ms", None)
    if wait is not None:
        attrs["pulsegate.job.queue_wait_ms"] = round(float(wait), 3)
    return attrs


class JobSpans:
    """Child spans of the jobs' own spans, made off the job's thread (see the module)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        from opentelemetry import context, trace  # optional dependency: the otel extra

        from pulsegate.version import __version__
        self._tracer = trace.get_tracer("pulsegate", __version__, tracer_provider)
        self._span_in = trace.get_current_span
        self._context_type = context.Context
        self._internal = trace.SpanKind.INTERNAL
        #: what the job's thread reads as a job starts (``gate.plugs.trace_context``)
        self.capture = context.get_current

    def start(self, record: RequestRecord, captured: object) -> Any:
        """A span for ``record`` under the span current in ``captured`` (the context the
        job started in), started when the run did; None when there is no such span."""
        if not isinstance(captured, self._context_type):
            return None
        if not self._span_in(captured).get_span_context().is_valid:
            return None
        return self._tracer.start_span(SPAN_PREFIX + record.endpoint, context=captured,
                                       kind=self._internal,
                                       start_time=int(record.started_at * 1e9))

    @staticmethod
    def end(span: Any, record: RequestRecord) -> None:
        """End ``span`` when the run ended."""
        span.end(end_time=int(record.started_at * 1e9) + int(record.duration_ms * 1e6))
