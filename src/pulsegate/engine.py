"""The framework-free core: one :class:`PulseGate` per application.

Adapters translate a framework's request into a :class:`~pulsegate.records.RequestInfo`
and drive four calls, the same for ASGI, WSGI and Django::

    ctx = gate.begin(info)                 # None: pass through untouched
    rejection = gate.admit(ctx)            # or: await gate.admit_async(ctx)
    headers = gate.response_headers(ctx, status)   # when the response starts
    record = gate.finish(ctx)              # after the last body chunk (or an error)

None of them raises into the application: a fault is counted in
``stats()["internal_errors"]``, logged once per kind, and the request proceeds as if
pulsegate were absent.
"""

from __future__ import annotations

import contextvars
import math
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
    query_sink,
)
from pulsegate.faults import FaultCounter
from pulsegate.header_values import CONFIDENCE, SCORE, TENTHS, tenths, whole
from pulsegate.incidents import IncidentLog, incident_record
from pulsegate.learn.baseline import KNOWN_METHODS, BaselineStore
from pulsegate.learn.endpoint import METRICS, EndpointModel
from pulsegate.learn.seasonal import SeasonalBaseline
from pulsegate.plugins import Plugs, RequestListener
from pulsegate.records import UNMATCHED, RequestInfo, RequestRecord
from pulsegate.reporting import GateReports
from pulsegate.sampling import Sampler
from pulsegate.scheduler import Scheduler

#: Version of the scoring model, reported in ``x-ml-model-version``.
MODEL_VERSION = "1.0.0"

Listener = RequestListener

_log = math.log
_log1p = math.log1p
# Records are built on every request: tuple.__new__ skips the NamedTuple's Python __new__.
_new_tuple = tuple.__new__
_new_object = object.__new__
_UNSET = contextvars.Token.MISSING  # a token's old value when the variable was unset
_NO_QUERY_HEADERS = (("x-ml-query-count", "0"), ("x-ml-query-ms", "0.0"), ("x-ml-nplusone", "0"))
_NO_OPTIMIZATION = ("x-ml-optimization-applied", "none")


class PulseGate(GateReports):
    """Measures, scores and (when configured) controls every request of one app.

    ``clock`` (monotonic seconds), ``wall`` (epoch seconds) and ``cpu_clock`` (thread CPU
    seconds) are injectable so tests and simulations can drive time themselves. A
    record's wall time is its start on ``clock`` plus an offset to ``wall`` that is
    re-read once per second of ``clock`` time.
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
        self.wall = wall
        self.cpu_clock = cpu_clock
        self.faults = FaultCounter()
        #: Background jobs (persistence, training, export); its thread starts lazily on
        #: the first request of each process.
        self.scheduler = Scheduler(faults=self.faults)
        #: What the components built below registered (state to persist, tunables,
        #: stats sections): the registry reads it (pulsegate.plugins).
        self.plugs = Plugs()
        c = config
        metrics = METRICS if c.query_analysis else tuple(
            m for m in METRICS if m not in ("queries", "query_time", "repeat_share"))
        if not c.measure_cpu:
            metrics = tuple(m for m in metrics if m != "cpu")
        if not c.measure_memory:
            metrics = tuple(m for m in metrics if m != "memory")
        self.metrics = metrics
        self._metric_index = {m: i for i, m in enumerate(metrics)}
        # Flags read on every request, copied out of the frozen config once.
        self._enabled = c.enabled
        self._qa = c.query_analysis
        self._perf = c.performance_prediction
        self._anom = c.anomaly_detection
        self._default_headers = self._perf and self._anom and self._qa
        self._repeat_metric = "repeat_share" in metrics
        self._memory_metric = "memory" in metrics
        #: Which requests read the CPU clock and the block count (see pulsegate.sampling).
        self.sampler = Sampler(c.cpu_sample_every if c.measure_cpu else 0,
                               c.memory_sample_every if c.measure_memory else 0,
                               c.cpu_sample_budget_us * 1e-6,
                               c.memory_sample_budget_us * 1e-6, clock, cpu_clock)
        self._tick = 0  # requests started, for the CPU and memory samples
        # wall time = clock time + _wall_offset, re-read when clock passes _offset_due
        self._wall_offset = 0.0
        self._offset_due = -math.inf
        self._next_sample = 0  # the next request to ask the sampler (the first one does)
        self.baselines = baselines = BaselineStore(
            lambda: EndpointModel(c.alpha, c.z_threshold, c.warmup, metrics,
                                  window=c.aggregation_window, seasonal=self._seasonal()),
            c.max_endpoints)
        self._index = baselines.index  # route -> method -> model (see BaselineStore)
        self._full_metrics = metrics == METRICS
        self._cpu_slot = "cpu" in metrics  # the headers score a prefix that skips it
        self.model_version = MODEL_VERSION
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
        #: The multivariate background model (``multivariate=True``), else None.
        self.multivariate: Any = None
        if c.multivariate:
            from pulsegate.learn.multivariate import MultivariateModel, attach

            self.multivariate = attach(self, MultivariateModel(
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
        self._exclude = frozenset(c.exclude_paths)
        self._exclude_prefixes = tuple(p + "/" for p in c.exclude_paths if p != "/")
        # Every excluded path starts with one of these: most requests are told apart
        # by this one test (``stems and is_excluded`` is ``is_excluded``).
        self._exclude_stems = tuple(c.exclude_paths)
        self._expose = c.headers
        self._max_queries = c.max_queries_per_request
        self._call_sites = c.capture_call_sites
        #: Query analysis (pulsegate.queries): detections per request, ``detections``
        #: (recent, bounded) and ``query_insights()`` (ranked across requests).
        from pulsegate.queries.requests import RequestQueries
        self.queries = RequestQueries(c, clock, wall, self.plugs)
        self.detections = self.queries.recent
        # Exporters, dashboard series, structured logs: each only when configured.
        from pulsegate.export import install as install_exports
        install_exports(self)
        #: Rate limiter and allocator (pulsegate.control), only when one is enabled: with
        #: both off the request path pays a single ``is None`` check.
        self.control: Any = None
        if c.rate_limiting or c.resource_allocation:
            from pulsegate.control.gatekeeper import Controller
            self.control = Controller(self)
        # Model registry, persistence (warm start), feedback, tuning, alerts: built last
        # so it can restore the state of every component created above.
        from pulsegate.registry.ops import ModelOps
        self.ops = ModelOps(self)
        self.registry = self.ops.registry

    @property
    def model_version(self) -> str:
        """Reported in ``x-ml-model-version``; the registry sets it on a deploy."""
        return self._version_header[1]

    @model_version.setter
    def model_version(self, version: str) -> None:
        # A header value: printable ASCII only (a stored version could hold anything).
        self._version_header = ("x-ml-model-version", "".join(
            ch if " " <= ch <= "~" else "?" for ch in str(version)))
        # the last headers of the common case (nothing optimised, no SQL), made once
        self._default_tail = (_NO_OPTIMIZATION, *_NO_QUERY_HEADERS, self._version_header)

    def _seasonal(self) -> SeasonalBaseline | None:
        """A seasonal baseline for a new endpoint (None when ``seasonality="off"``); its
        offset turns this gate's monotonic clock into epoch seconds."""
        mode = self.config.seasonality
        if mode == "off":
            return None
        clock = self.clock
        now = clock()
        if now >= self._offset_due:
            self._sync_wall(now)
        return SeasonalBaseline(mode, utc_offset=self._wall_offset)

    @classmethod
    def from_env(cls, **overrides: Any) -> PulseGate:
        return cls(Config.from_env(**overrides))

    # --- the request cycle -------------------------------------------------------------

    def is_excluded(self, path: str) -> bool:
        return path in self._exclude or path.startswith(self._exclude_prefixes)

    def begin(self, info: RequestInfo) -> RequestContext | None:
        """Start measuring a request; None means "not ours, pass it through"."""
        if not self._enabled:
            return None
        path = info.path
        if path.startswith(self._exclude_stems) and self.is_excluded(path):
            self.counters["excluded"] += 1
            return None
        return self.start(info)

    def start(self, info: RequestInfo) -> RequestContext | None:
        """:meth:`begin` for an adapter that has already checked ``enabled`` and
        ``exclude_paths`` itself (the ASGI middleware does, before building ``info``)."""
        try:
            # CPU and memory are sampled, on the first request of every N (each read is a
            # system call or an allocator walk): requests in between pay one comparison.
            tick = self._tick
            self._tick = tick + 1
            if tick == self._next_sample:
                # at most MAX_GAP requests apart: the scheduler's thread starts here, once
                # there are jobs (the first request of a process, soon after a job is
                # added or the process forked)
                scheduler = self.scheduler
                if not scheduler.started and scheduler.jobs:
                    scheduler.ensure_started()
                cpu0, mem0, self._next_sample = self.sampler.take(tick)
            else:
                cpu0 = mem0 = None
            # (the clock is an instance attribute: read it as an attribute, then call --
            # a method-call lookup on an instance attribute is not specialised)
            clock = self.clock
            start = clock()
            if start >= self._offset_due:
                self._sync_wall(start)
            if self._qa:
                # RequestContext(info, start, cpu0, mem0, max_queries), in line: the type
                # call and its __init__ frame are a fifth of what making one costs (a test
                # keeps the two field lists the same)
                ctx = _new_object(RequestContext)
                ctx.info = info
                ctx.route = info.route
                ctx.start = start
                ctx.cpu0 = cpu0
                ctx.mem0 = mem0
                ctx.max_queries = self._max_queries
                ctx.call_sites = self._call_sites
                ctx.ttfb = ctx.status = ctx.error = ctx.queries = ctx.score = None
                ctx.model = ctx.client_key = ctx.ticket = ctx.extra_headers = ctx.token = None
                ctx.query_count = 0
                ctx.query_ms = 0.0
                ctx.detections = NO_DETECTIONS
                ctx.optimization = "none"
                ctx.priority = "normal"
                ctx.finished = False
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

    def _sync_wall(self, now: float) -> None:
        """Re-read the wall clock: a record's wall time is its start on ``clock`` plus
        this offset, re-read once per second of ``clock`` time rather than on every
        request (``time.time()`` costs as much as a quarter of the rest of ``start``).
        A wall-clock step (NTP, a resumed VM) shows within that second."""
        wall = self.wall
        self._wall_offset = wall() - now
        self._offset_due = now + 1.0

    def admit(self, ctx: RequestContext) -> Rejection | None:
        """Rate limit and admission control, blocking form (threads, WSGI).

        Returns the response to send instead of calling the app, or None to proceed."""
        control = self.control
        if control is None:
            return None
        try:
            rejection: Rejection | None = control.admit(ctx)
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
            rejection: Rejection | None = await control.admit_async(ctx)
            return rejection
        except Exception as exc:
            self.faults.record("admit", exc)
            return None

    def response_headers(self, ctx: RequestContext, status: int) -> list[tuple[str, str]]:
        """Called when the response starts: records time-to-headers, scores the request
        so far (latency to headers, queries so far) and returns the ``x-ml-*`` headers
        to add, after any protocol headers (rate limits) the request collected."""
        try:
            ttfb = ctx.ttfb
            if ttfb is None:
                clock = self.clock
                ttfb = ctx.ttfb = clock() - ctx.start
            ctx.status = status
            out = ctx.extra_headers  # protocol headers (rate limits) come first
            expose = self._expose
            if expose != "all":
                if out is None:
                    out = ctx.extra_headers = []
                if expose == "safe":
                    out.append(("x-ml-optimization-applied", ctx.optimization))
                    out.append(self._version_header)
                return out
            info = ctx.info
            try:  # the store's index, read in line: this runs on every request
                model = ctx.model = self._index[ctx.route][info.method]
                model.referenced = True
            except KeyError:
                model = ctx.model = self.baselines.lookup(info.method, ctx.route)
            ms = ttfb * 1000.0
            view = model.view
            predicted, confidence = view[0], view[1]
            count = ctx.query_count
            if count and self._qa:
                # With no query yet the query metrics cannot rise above their levels,
                # so only latency is scored.
                latency = _log(ms if ms > 1e-3 else 1e-3)
                score = model.update(
                    latency, [None, _log1p(count), _log1p(ctx.query_ms)] if self._cpu_slot
                    else [_log1p(count), _log1p(ctx.query_ms)], False)[0]
            elif predicted is not None and ms <= predicted:
                score = 0.0  # no slower than the forecast: nothing to score
            else:
                score = model.score_latency(_log(ms if ms > 1e-3 else 1e-3))
            ctx.score = score
            if self._default_headers and predicted is not None and not count:
                # every header, no SQL yet: the common case, in one go
                try:
                    forecast = TENTHS[whole(predicted * 10.0 + 0.5)]
                except KeyError:
                    forecast = tenths(predicted)
                ours = [("x-ml-prediction-confidence", CONFIDENCE[whole(confidence + 0.5)]),
                        ("x-ml-predicted-latency-ms", forecast),
                        ("x-ml-anomaly-score", SCORE[whole(score * 1000.0 + 0.5)]),
                        *(self._default_tail if ctx.optimization == "none" else (
                            ("x-ml-optimization-applied", ctx.optimization),
                            *_NO_QUERY_HEADERS, self._version_header))]
                if out is None:
                    ctx.extra_headers = ours
                    return ours
                out += ours
                return out
            if out is None:
                out = ctx.extra_headers = []
            optimization = _NO_OPTIMIZATION if ctx.optimization == "none" \
                else ("x-ml-optimization-applied", ctx.optimization)
            if self._perf:
                out.append(("x-ml-prediction-confidence", CONFIDENCE[whole(confidence + 0.5)]))
                if predicted is not None:
                    out.append(("x-ml-predicted-latency-ms", tenths(predicted)))
            if self._anom:
                out.append(("x-ml-anomaly-score", SCORE[whole(score * 1000.0 + 0.5)]))
            out.append(optimization)
            if self._qa:
                if count:
                    out.extend((("x-ml-query-count", str(count)),
                                ("x-ml-query-ms", tenths(ctx.query_ms)),
                                ("x-ml-nplusone", str(len(self._analyze_queries(ctx))))))
                else:
                    out.extend(_NO_QUERY_HEADERS)
            out.append(self._version_header)
            return out
        except Exception as exc:
            self.faults.record("response_headers", exc)
            return []
        finally:
            if self.start_listeners:
                for hook in self.start_listeners:
                    try:
                        hook(ctx, status)
                    except Exception as exc:
                        self.faults.record("start listener", exc)

    def finish(self, ctx: RequestContext, status: int | None = None,
               error: BaseException | None = None,
               record: bool = True) -> RequestRecord | None:
        """End of the request (after its last body chunk, or on an error): update the
        endpoint's model and hand the record to the listeners. Idempotent.

        ``record=False`` (the adapters): the caller does not need the
        :class:`RequestRecord`, so it is built only if something consumes it -- a
        listener, the controller, or a notable request (anomaly, incident, detection,
        applied optimization) -- and None is returned otherwise. Adapters pass all
        four arguments by position, ``finish(ctx, None, None, False)``: a call that
        names an argument or leaves defaults to fill costs more."""
        if ctx.finished:
            return None
        ctx.finished = True
        try:
            clock = self.clock
            now = clock()
            duration = now - ctx.start
            cpu0 = ctx.cpu0
            if cpu0 is None:
                cpu = None
            else:
                cpu_clock = self.cpu_clock
                cpu = cpu_clock() - cpu0
            mem = None if ctx.mem0 is None else sys.getallocatedblocks() - ctx.mem0
            if error is not None:
                ctx.error = type(error).__name__
                status = 500 if ctx.status is None or ctx.status < 500 else ctx.status
            if status is not None:
                ctx.status = status
            final_status = ctx.status if ctx.status is not None else 500
            counters = self.counters
            counters["requests"] += 1
            if final_status >= 500:
                counters["errors"] += 1
            model = ctx.model or self.baselines.lookup(ctx.info.method, ctx.route)
            ms = duration * 1000.0
            latency = _log(ms if ms > 1e-3 else 1e-3)
            count = ctx.query_count
            detections: list[Any] = NO_DETECTIONS
            # The forecast this request is scored against: the model as it was.
            view = model.view
            cpu_value = None if cpu is None else _log1p(cpu * 1000.0) if cpu > 0 else 0.0
            if count or mem is not None or model.queried:
                if count:
                    analyzed = self.queries.finish(ctx, model.key)
                    detections = analyzed
                    model.queried = True
                if self._full_metrics:  # the default metric set, built in one go
                    score, anomalous, _, incident = model.update(latency, [
                        cpu_value, _log1p(count), _log1p(ctx.query_ms),
                        _log1p(analyzed.repeat_share) if count else 0.0,
                        None if mem is None else (_log1p(mem) if mem >= 0 else -_log1p(-mem))],
                        True, now)
                else:
                    score, anomalous, _, incident = model.update(
                        latency, self._values(ctx, cpu_value, mem, detections), True, now)
            else:
                # Most requests, in any metric set: latency and (one in N) CPU alone. What
                # would follow CPU is the query metrics, zero and never seen (``queried``
                # is false), and memory, not sampled: the prefix says it all.
                score, anomalous, _, incident = model.update(
                    latency, None if cpu_value is None else [cpu_value], True, now)
            if final_status >= 500:  # the incident detector's error evidence
                model.error()
            # Most requests are none of these and nobody wants their record: one test.
            if not (anomalous or incident is not None or score >= self.notable_score
                    or detections or ctx.optimization != "none" or record or self.listeners
                    or self.control is not None):
                return None
            anomalous = anomalous and self._anom
            flagged = incident is not None and incident.is_anomaly and self._anom
            notable = anomalous or flagged or score >= self.notable_score or bool(detections) \
                or ctx.optimization != "none"
            info = ctx.info
            method = info.method
            ttfb = ctx.ttfb if ctx.ttfb is not None else duration
            out = _new_tuple(RequestRecord, (
                method if method in KNOWN_METHODS else "OTHER",
                ctx.route or UNMATCHED, info.path, final_status, ctx.start + self._wall_offset,
                ttfb * 1000.0, ms, None if cpu is None else cpu * 1000.0, mem, count,
                ctx.query_ms, ctx.client_key, ctx.error, score, view[1], view[0],
                ctx.optimization, len(detections)))
            if self.control is not None:
                try:
                    self.control.finish(ctx, out)
                except Exception as exc:
                    self.faults.record("control.finish", exc)
            if anomalous:
                counters["anomalies"] += 1
                self.recent_anomalies.append(out)
            if flagged and incident is not None:
                counters["incidents"] += 1
                self.incidents.append(
                    incident_record(model.key, self.wall(), incident, model.incident))
            if notable:
                self._notify(self.notable_listeners, out, ctx)
            if self.listeners:
                self._notify(self.listeners, out, ctx)
            return out
        except Exception as exc:
            self.faults.record("finish", exc)
            return None
        finally:
            if ctx.ticket is not None:  # never leak an allocator slot, even on a fault
                ctx.ticket.release(ok=False)
                ctx.ticket = None
            # The finished request stays in the ContextVar, ignored (``finished``), until
            # the next request in this context replaces it: a reset costs as much as the
            # set, and after a request there is usually nothing to go back to (a new
            # thread or task context, or the request before, finished too). A live sink
            # around this one (a ``capture()`` block, an outer request) is put back.
            token = ctx.token
            if token is not None:
                ctx.token = None  # it holds the sink before: keep no chain of requests
                outer = token.old_value
                if outer is not _UNSET and outer is not None and not outer.finished:
                    try:
                        query_sink.reset(token)
                    except ValueError:  # made in another context (a body closed by
                        pass            # another thread): that context simply ends

    def _values(self, ctx: RequestContext, cpu_value: float | None, mem: int | None,
                detections: Any) -> list[float | None] | None:
        """The request's values of ``self.metrics[1:]`` (all but latency), in order, for
        a configuration that leaves some metrics out (the default set is built inline
        in finish); None when latency is the only metric."""
        values: list[float | None] = []
        if self._cpu_slot:
            values.append(cpu_value)
        if self._qa:
            values.append(_log1p(ctx.query_count))
            values.append(_log1p(ctx.query_ms))
        if self._repeat_metric:
            values.append(_log1p(detections.repeat_share) if ctx.query_count else 0.0)
        if self._memory_metric:
            values.append(None if mem is None else (_log1p(mem) if mem >= 0 else -_log1p(-mem)))
        return values or None

    def _notify(self, listeners: list[Listener], record: RequestRecord,
                ctx: RequestContext) -> None:
        for listener in listeners:
            try:
                listener(record, ctx)
            except Exception as exc:
                self.faults.record(f"listener {getattr(listener, '__qualname__', listener)}",
                                   exc)

    # --- hooks filled by the query package ----------------------------------------------

    def _analyze_queries(self, ctx: RequestContext) -> list[Any]:
        """The request's detections, analysed once (again only if more statements ran)."""
        return self.queries.analyze(ctx)
