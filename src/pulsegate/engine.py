"""The framework-free core: one :class:`PulseGate` per application.

Adapters drive it through a :class:`~pulsegate.cycle.RequestCycle`, which calls the
measuring steps below (its internal endpoints first, then ``ignores`` and ``start``,
the two halves of ``begin``); code outside a web request (tests, benchmarks) may call
them::

    ctx = gate.begin(info)                 # None: pass through untouched
    rejection = gate.admit(ctx)            # or: await gate.admit_async(ctx)
    headers = gate.response_headers(ctx, status)   # when the response starts
    record = gate.finish(ctx)              # after the last body chunk (or an error)

None raises into the app: a fault is counted (``stats()["internal_errors"]``), logged
once per kind, and the request proceeds as if pulsegate were absent.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pulsegate.config import Config
from pulsegate.context import (
    NO_DETECTIONS,
    PassThroughContext,
    Rejection,
    RequestContext,
    leave,
    query_sink,
)
from pulsegate.faults import FaultCounter
from pulsegate.flow import settle, settle_async
from pulsegate.headers import HeaderBuilder
from pulsegate.http import ExcludedPaths
from pulsegate.incidents import IncidentLog, incident_record
from pulsegate.learn.baseline import KNOWN_METHODS, BaselineStore
from pulsegate.learn.endpoint import EndpointModel
from pulsegate.learn.seasonal import SeasonalBaseline
from pulsegate.plugins import Plugs, RequestListener
from pulsegate.records import RequestInfo, RequestRecord
from pulsegate.reporting import GateReports
from pulsegate.sampling import Sampler, WallOffset
from pulsegate.scheduler import Scheduler
from pulsegate.scoring import MetricValues, log_ms, metric_set
from pulsegate.units import Units

#: Version of the scoring model, reported in ``x-ml-model-version``.
MODEL_VERSION = "1.0.0"

Listener = RequestListener


class PulseGate(GateReports):
    """Measures, scores and (when configured) controls every request of one app.

    ``clock`` (monotonic seconds), ``wall`` (epoch seconds) and ``cpu_clock`` (thread CPU
    seconds) are injectable so tests and simulations can drive time themselves. A
    record's wall time is its start on ``clock`` plus an offset to ``wall`` that is
    re-read once per second of ``clock`` time.

    At most 30 instance attributes (aliases are GateReports' properties, optional parts
    in ``plugs.components``): past 30 CPython gives an instance a dict of its own, where no gate
    method call on the request path is specialised (``instructions.py --misses flask``).
    """

    def __init__(self, config: Config | None = None, /, *,
                 clock: Callable[[], float] = time.perf_counter,
                 wall: Callable[[], float] = time.time,
                 cpu_clock: Callable[[], float] = time.thread_time,
                 **options: Any) -> None:
        if config is None:
            config = Config(**options)
        elif options:
            config = config.replace(**options)
        self.config = config
        self.clock = clock
        self.faults = FaultCounter()
        #: Background jobs (persistence, training, export); its thread starts lazily on
        #: the first request of each process.
        self.scheduler = Scheduler(faults=self.faults)
        #: What the components below register (state, tunables, stats): pulsegate.plugins
        self.plugs = Plugs()
        c = config
        self.metrics = metrics = metric_set(c.query_analysis, c.measure_cpu, c.measure_memory)
        self.values = MetricValues(metrics)
        #: Off (``enabled=False``): every request passes through untouched.
        self.enabled = c.enabled
        # Flags read on every request, copied out of the frozen config once.
        self._query_analysis = c.query_analysis
        self._anomaly_detection = c.anomaly_detection
        self.headers = HeaderBuilder(c.headers, c.performance_prediction, c.anomaly_detection,
                                     c.query_analysis, MODEL_VERSION)
        #: Which requests read the CPU clock and the block count (see pulsegate.sampling).
        self.sampler = Sampler(c.cpu_sample_every if c.measure_cpu else 0,
                               c.memory_sample_every if c.measure_memory else 0,
                               c.cpu_sample_budget_us * 1e-6,
                               c.memory_sample_budget_us * 1e-6, clock, cpu_clock)
        #: A record's wall time: its start on ``clock`` plus this offset.
        self.wall_offset = WallOffset(wall)
        self.baselines = BaselineStore(
            lambda: EndpointModel(c.alpha, c.z_threshold, c.warmup, metrics,
                                  window=c.aggregation_window, seasonal=self._seasonal()),
            c.max_endpoints)
        #: Called with every finished request's record (exporters that aggregate all
        #: traffic: Prometheus, the dashboard's series, OpenTelemetry).
        self.listeners: list[Listener] = []
        #: Called only for a notable request: an anomaly or a score of at least
        #: ``notable_score``, an incident, a query detection, or an optimization applied
        #: (throttled, shed, degraded). Most requests are none of these, so consumers that
        #: care only about them (logs, the prediction registry) cost nothing otherwise.
        self.notable_listeners: list[Listener] = []
        #: Lowest request score that is notable (the registry lowers it to see near misses).
        self.notable_score = 2.0
        if c.multivariate:
            from pulsegate.learn.multivariate import MultivariateModel, attach

            self.plugs.components["multivariate"] = attach(self, MultivariateModel(
                sample_size=c.multivariate_sample_size,
                contamination=c.multivariate_contamination, weight=c.multivariate_weight,
                min_samples=min(256, c.multivariate_sample_size)), c.multivariate_interval)
        #: Called as ``hook(ctx, status)`` when the response starts, after the headers
        #: were scored (the OTel exporter: an ASGI server span is ended before finish).
        self.start_listeners: list[Callable[[RequestContext, int], None]] = []
        self.recent_anomalies: deque[RequestRecord] = deque(maxlen=c.max_recent)
        #: ``gate.incidents()``: the recent incidents as :class:`~pulsegate.incidents.Incident`
        self.incidents = IncidentLog(maxlen=c.max_recent)
        self.counters: dict[str, int] = {
            "requests": 0, "excluded": 0, "anomalies": 0, "incidents": 0, "errors": 0,
            "throttled": 0, "shed": 0,
        }
        self.excluded = ExcludedPaths(c.exclude_paths)
        self._max_queries = c.max_queries_per_request
        self._call_sites = c.capture_call_sites
        #: Query analysis (pulsegate.queries): detections per request, ``detections``
        #: (recent, bounded) and ``query_insights()`` (ranked across requests).
        from pulsegate.queries.requests import RequestQueries
        self.queries = RequestQueries(c, clock, wall, self.plugs)
        #: Work that is not a request, learnt by the same models (pulsegate.units), and
        #: what sees each finished run: ``(record, run)``, as a request listener.
        self.unit_listeners: list[Listener] = []
        self.units = Units(self)
        # Exporters, dashboard series, structured logs: each only when configured.
        from pulsegate.export import install as install_exports
        install_exports(self)
        #: Rate limiter, allocator and healing actions (pulsegate.control), only when one
        #: is configured: with all off the request path pays a single ``is None`` check.
        self.control: Any = None
        if c.rate_limiting or c.resource_allocation or c.healing_actions or c.response_cache:
            from pulsegate.control.gatekeeper import Controller
            self.control = Controller(self)
        if (advisor := self.attach_advisor()) is not None:
            self.plugs.components["advisor"] = advisor
        # Model registry, persistence (warm start), feedback, tuning, alerts: built last
        # so it can restore the state of every component created above.
        from pulsegate.registry.ops import ModelOps
        self.ops = ModelOps(self)

    @property
    def model_version(self) -> str:
        """Reported in ``x-ml-model-version`` (printable ASCII: anything else shows as
        ``?``); the registry sets it on a deploy."""
        return self.headers.version[1]

    @model_version.setter
    def model_version(self, version: str) -> None:
        self.headers.set_version(version)

    def _seasonal(self) -> SeasonalBaseline | None:
        """A seasonal baseline for a new endpoint (None when ``seasonality="off"``); its
        offset turns this gate's monotonic clock into epoch seconds."""
        mode = self.config.seasonality
        if mode == "off":
            return None
        return SeasonalBaseline(mode, utc_offset=self.wall_offset.at(self.clock()))

    @classmethod
    def from_env(cls, **overrides: Any) -> PulseGate:
        return cls(Config.from_env(**overrides))

    # --- measuring one request (the steps pulsegate.cycle drives) --------------------------

    def ignores(self, path: str) -> bool:
        """Whether a request for ``path`` passes through unmeasured: the gate is off, or
        the path is in ``exclude_paths`` (counted)."""
        if not self.enabled:
            return True
        if path in self.excluded:
            self.counters["excluded"] += 1
            return True
        return False

    def begin(self, info: RequestInfo) -> RequestContext | None:
        """Start measuring a request; None means "not ours, pass it through"."""
        if self.ignores(info.path):
            return None
        return self.start(info)

    def start(self, info: RequestInfo) -> RequestContext | None:
        """:meth:`begin` once :meth:`ignores` has said no (the request cycle asks it
        after checking the internal endpoints)."""
        try:
            # CPU and memory are sampled, on the first request of every N (each read is a
            # system call or an allocator walk): requests in between pay one comparison.
            sampler = self.sampler
            tick = sampler.requests
            sampler.requests = tick + 1
            cpu0 = mem0 = None
            if tick >= sampler.next_take:  # (>=: another thread may have passed it)
                # at most MAX_GAP requests apart: the scheduler's thread starts here, once
                # there are jobs (the first request of a process, soon after a job is
                # added or the process forked)
                if not self.scheduler.started and self.scheduler.jobs:
                    self.scheduler.ensure_started()
                cpu0, mem0, sampler.next_take = sampler.take(tick)
            start = self.clock()
            if start >= self.wall_offset.due:
                self.wall_offset.sync(start)
            if self._query_analysis:
                ctx = RequestContext(info, start, cpu0, mem0, self._max_queries,
                                     self._call_sites)
            else:
                ctx = PassThroughContext(info, start, cpu0, mem0, 0)
                ctx.outer = outer = query_sink.get()
                # statements only pass through: find call sites if the outer sink wants them
                ctx.call_sites = outer is not None and outer.call_sites
            ctx.token = query_sink.set(ctx)
            return ctx
        except Exception as exc:
            self.faults.record("begin", exc)
            return None

    def admit(self, ctx: RequestContext) -> Rejection | None:
        """Rate limit and admission control, blocking form (threads, WSGI).

        Returns the response to send instead of calling the app, or None to proceed."""
        control = self.control
        if control is None:
            return None
        try:
            rejection: Rejection | None = settle(control.admission(ctx))
            return rejection
        except Exception as exc:
            self.faults.record("admit", exc)
            return None

    async def admit_async(self, ctx: RequestContext) -> Rejection | None:
        """Rate limit and admission control, asyncio form (waits without a thread)."""
        control = self.control
        if control is None:
            return None
        try:
            rejection: Rejection | None = await settle_async(control.admission(ctx))
            return rejection
        except Exception as exc:
            self.faults.record("admit", exc)
            return None

    def response_headers(self, ctx: RequestContext, status: int) -> list[tuple[str, str]]:
        """Called when the response starts: records time-to-headers, scores the request
        so far (latency to headers, queries so far) and returns the headers to add: any
        protocol headers (rate limits) the request collected, then the ``x-ml-*`` ones."""
        try:
            ttfb = ctx.ttfb
            if ttfb is None:
                ttfb = ctx.ttfb = self.clock() - ctx.start
            ctx.status = status
            if self.headers.scores:
                ours = self._scored_headers(ctx, ttfb)
            else:
                ours = self.headers.unscored(ctx.optimization)
            if ctx.extra_headers is None:
                ctx.extra_headers = ours
            else:
                ctx.extra_headers += ours
            return ctx.extra_headers
        except Exception as exc:
            self.faults.record("response_headers", exc)
            return []
        finally:
            for hook in self.start_listeners:
                try:
                    hook(ctx, status)
                except Exception as exc:
                    self.faults.record("start listener", exc)

    def _scored_headers(self, ctx: RequestContext, ttfb: float) -> list[tuple[str, str]]:
        """Score the request's time to headers (``ttfb`` seconds) against its endpoint's
        latency forecast (nothing is learned yet) and build every ``x-ml-*`` header.

        Latency alone, with or without SQL (decision 2 of 2026-12-07): scoring the query
        metrics too would be a second pass of the whole model on every request that ran
        SQL, only for the header; :meth:`finish` scores every metric and records a
        query-count anomaly (record, logs, incidents, counters)."""
        model = ctx.model = self.baselines.lookup(ctx.info.method, ctx.route)
        predicted, confidence = model.view[0], model.view[1]
        if predicted is not None and ttfb * 1000.0 <= predicted:
            score = 0.0  # no slower than the forecast: nothing to score
        else:
            score = model.score_latency(log_ms(ttfb))
        count = ctx.query_count
        # analysed once, unless more statements run before the finish
        nplusone = len(self.queries.analyze(ctx)) if count and self._query_analysis else 0
        ctx.score = score
        return self.headers.build(ctx.optimization, predicted, confidence, score, count,
                                  ctx.query_ms, nplusone)

    def finish(self, ctx: RequestContext, status: int | None = None,
               error: BaseException | None = None,
               record: bool = True) -> RequestRecord | None:
        """End of the request (after its last body chunk, or on an error): update the
        endpoint's model and hand the record to the listeners. Idempotent.

        ``record=False`` (the request cycle): the :class:`RequestRecord` is built only
        if something consumes it -- a listener, the controller, or a notable request
        (anomaly, incident, detection, applied optimization) -- and None is returned
        otherwise."""
        if ctx.finished:
            return None
        ctx.finished = True
        try:
            now = self.clock()
            duration = now - ctx.start
            cpu_ms = None if ctx.cpu0 is None else (self.sampler.cpu_clock() - ctx.cpu0) * 1000.0
            mem = None if ctx.mem0 is None else sys.getallocatedblocks() - ctx.mem0
            final_status = ctx.settle_status(status, error)
            self.counters["requests"] += 1
            if final_status >= 500:
                self.counters["errors"] += 1
            model = ctx.model or self.baselines.lookup(ctx.info.method, ctx.route)
            view = model.view  # the forecast this request is scored against, as it was
            detections: Any = NO_DETECTIONS
            if ctx.query_count:
                detections = self.queries.finish(ctx, model.key)
                model.queried = True
            values = self.values.learned(
                model.queried, cpu_ms, ctx.query_count, ctx.query_ms,
                detections.repeat_share if ctx.query_count else 0.0, mem)
            score, anomalous, driver, incident = model.update(  # a cache hit: not learnt
                log_ms(duration), values, ctx.optimization != "cache", now)  # (decision 7)
            if final_status >= 500:  # the incident detector's error evidence
                model.error()
            # Most requests are none of these and nobody wants their record: one test.
            if not (anomalous or incident is not None or score >= self.notable_score
                    or detections or ctx.optimization != "none" or record or self.listeners
                    or self.control is not None):
                return None
            method = ctx.info.method
            out = RequestRecord.of_request(
                ctx, method if method in KNOWN_METHODS else "OTHER", final_status,
                started_at=ctx.start + self.wall_offset.offset, duration_ms=duration * 1000.0,
                cpu_ms=cpu_ms, memory_blocks=mem, anomaly_score=score, confidence=view[1],
                predicted_ms=view[0], detections=len(detections),
                anomaly_metric=model.metrics[driver] if driver >= 0 else None,
                anomalous=anomalous and self._anomaly_detection)
            if self.control is not None:
                try:
                    self.control.finish(ctx, out)
                except Exception as exc:
                    self.faults.record("control.finish", exc)
            self.publish(out, ctx, model, incident, self.listeners)
            return out
        except Exception as exc:
            self.faults.record("finish", exc)
            return None
        finally:
            if ctx.ticket is not None:  # never leak an allocator slot, even on a fault
                ctx.ticket.release(ok=False)
                ctx.ticket = None
            leave(ctx)

    def publish(self, out: RequestRecord, ctx: RequestContext, model: EndpointModel,
                incident: Any, listeners: list[Listener]) -> None:
        """Hand a finished request's (or unit run's: pulsegate.units) record on: to the
        recent anomalies and incidents, the notable listeners if it is notable, and
        ``listeners`` (the request or the unit ones)."""
        flagged = incident is not None and incident.is_anomaly and self._anomaly_detection
        if out.anomalous:
            self.counters["anomalies"] += 1
            self.recent_anomalies.append(out)
        if flagged:
            self.counters["incidents"] += 1
            self.incidents.append(incident_record(model.key, self.wall(), incident,
                                                  model.incident))
        if out.anomalous or flagged or out.anomaly_score >= self.notable_score \
                or out.detections or ctx.optimization != "none":
            self._notify(self.notable_listeners, out, ctx)
        if listeners:
            self._notify(listeners, out, ctx)

    def _notify(self, listeners: list[Listener], record: RequestRecord,
                ctx: RequestContext) -> None:
        for listener in listeners:
            try:
                listener(record, ctx)
            except Exception as exc:
                self.faults.record(f"listener {getattr(listener, '__qualname__', listener)}",
                                   exc)
