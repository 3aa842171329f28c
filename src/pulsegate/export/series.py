"""Bounded in-memory history for the dashboard: per-endpoint time series, the control
plane's series, recent anomalies and query detections.

Everything here is fed by one cheap listener at the end of each request and is capped
by configuration, never by traffic:

* one ring buffer of ``points`` buckets per endpoint, at most ``max_endpoints``
  endpoints (least recently seen dropped first); a bucket covers
  ``aggregation_window`` seconds of wall time, aligned to multiples of it;
* one ring buffer of control buckets (requests, throttles, sheds, allocator limit);
* recent anomalies and detections: ``max_recent`` entries each; a detection seen again
  on the same endpoint (same kind and fingerprint) updates its entry instead of adding
  one, so a hot N+1 cannot flush everything else out.

Per request the work is two dict look-ups, a log, a square root and a few additions.
The forecast band of a bucket is averaged in log space over its requests:
``low, high = e^{f̄ ∓ k·σ̄}`` with ``f`` the forecast (log latency) each request was
judged against, ``σ`` the model's spread (floored) and ``k`` the z threshold -- the
band outside which a request counts as anomalous.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.bounded import BoundedLRU
from pulsegate.export.paths import exported_path
from pulsegate.records import RequestRecord

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host


class Bucket:
    """One aggregation window of one endpoint.

    The forecast and its band are averaged over the window in log space, where the
    model lives: ``forecast = e^{mean f}``, ``low, high = e^{mean f ∓ k·mean σ}``."""

    __slots__ = ("anomalies", "band_n", "errors", "f_sum", "k", "max_ms", "n", "sd_sum",
                 "sum_ms", "t")

    def __init__(self, t: float, k: float) -> None:
        self.t = t
        self.k = k
        self.n = 0
        self.sum_ms = 0.0
        self.max_ms = 0.0
        self.f_sum = 0.0
        self.sd_sum = 0.0
        self.band_n = 0
        self.anomalies = 0
        self.errors = 0

    def as_dict(self) -> dict[str, Any]:
        forecast = low = high = None
        if self.band_n:
            f = self.f_sum / self.band_n
            sd = self.sd_sum / self.band_n
            forecast, low, high = math.exp(f), math.exp(f - self.k * sd), math.exp(f + self.k * sd)
        return {"t": self.t, "n": self.n,
                "mean_ms": self.sum_ms / self.n if self.n else None,
                "max_ms": self.max_ms if self.n else None,
                "forecast_ms": forecast, "low_ms": low, "high_ms": high,
                "anomalies": self.anomalies, "errors": self.errors}


class ControlBucket:
    """One aggregation window of the whole app: admission and rate-limit outcomes."""

    __slots__ = ("anomalies", "in_flight", "limit", "n", "shed", "t", "throttled")

    def __init__(self, t: float, limit: float | None, in_flight: float | None) -> None:
        self.t = t
        self.n = 0
        self.throttled = 0
        self.shed = 0
        self.anomalies = 0
        self.limit = limit
        self.in_flight = in_flight

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "n": self.n, "throttled": self.throttled, "shed": self.shed,
                "anomalies": self.anomalies, "limit": self.limit, "in_flight": self.in_flight}


def allocator_state(gate: Host) -> tuple[float | None, float | None]:
    """(current limit, requests in flight) from the gauges the allocator registered
    (``concurrency_limit``, ``in_flight``); (None, None) without an allocator."""
    gauges = gate.plugs.gauges
    return _number(gauges.get("concurrency_limit")), _number(gauges.get("in_flight"))


def _number(value: Any) -> float | None:
    if callable(value):
        try:
            value = value()
        except Exception:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def detection_fields(det: Any) -> dict[str, Any]:
    """The exportable fields of a query detection (redacted SQL only: never parameters),
    read by name so any object with the documented ``Detection`` attributes works."""
    out: dict[str, Any] = {}
    for name in ("kind", "fingerprint", "sql", "count", "total_ms", "call_site",
                 "relationship", "suggestion", "confidence"):
        value = det.get(name) if isinstance(det, dict) else getattr(det, name, None)
        if value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[name] = value
    return out


class SeriesStore:
    """The dashboard's memory: see the module docstring for the bounds."""

    def __init__(self, gate: Host, *, points: int = 120) -> None:
        c = gate.config.model
        self.gate = gate
        self.window = float(c.aggregation_window)
        self.points = points
        self.max_endpoints = c.max_endpoints
        self.k = float(c.z_threshold)
        self.series: BoundedLRU[str, deque[Bucket]] = BoundedLRU(c.max_endpoints)
        self.control: deque[ControlBucket] = deque(maxlen=points)
        self.anomalies: deque[dict[str, Any]] = deque(maxlen=c.max_recent)
        self.detections: BoundedLRU[tuple[str, str, str], dict[str, Any]] = BoundedLRU(c.max_recent)
        self.max_recent = c.max_recent
        self.max_clients = 50
        self.throttled_clients: BoundedLRU[str, int] = BoundedLRU(self.max_clients)
        self.feedback: dict[str, bool] = {}
        self._ids = itertools.count(1)
        #: Counters of the process(es) this one was restored from (``load_state``),
        #: added to the live ones where the dashboard shows totals.
        self.restored: dict[str, int] = {}
        # The listener runs on request threads (WSGI) or the event loop; readers (the
        # dashboard's JSON) take the lock only to copy.
        self.lock = threading.Lock()

    # --- the listener ---------------------------------------------------------------

    def __call__(self, record: RequestRecord, ctx: RequestContext) -> None:
        key = record.endpoint
        t = record.started_at - record.started_at % self.window
        with self.lock:
            buckets = self.series.touch(key)
            if buckets is None:
                buckets = deque(maxlen=self.points)
                self.series.put(key, buckets)
            b = buckets[-1] if buckets else None
            if b is None or b.t != t:
                if b is not None and t < b.t:  # a late record of an older window
                    b = next((x for x in buckets if x.t == t), None)
                if b is None or b.t != t:
                    b = Bucket(t, self.k)
                    buckets.append(b)
            ms = record.duration_ms
            b.n += 1
            b.sum_ms += ms
            if ms > b.max_ms:
                b.max_ms = ms
            predicted = record.predicted_ms
            if predicted is not None and predicted > 0.0:
                model = self.gate.baselines.peek(key)
                if model is not None:
                    b.f_sum += math.log(predicted)
                    sd = math.sqrt(model.var[0])
                    b.sd_sum += sd if sd > model.floors[0] else model.floors[0]
                    b.band_n += 1
            if record.status >= 500:
                b.errors += 1
            # The engine's verdict (its threshold, its warm-up), not a re-judgement.
            if record.anomalous:
                b.anomalies += 1
                self.anomalies.append({
                    "id": f"anomaly-{next(self._ids)}", "at": record.started_at,
                    "endpoint": key, "_path": record.path, "status": record.status,
                    "duration_ms": ms, "predicted_ms": record.predicted_ms,
                    "score": record.anomaly_score, "confidence": record.confidence,
                    "metric": record.anomaly_metric, "unusual": record.unusual,
                    "_obj": record})
            self._control(record, t, record.anomalous)
            if record.detections and ctx.detections:
                for det in ctx.detections:
                    self._detection(key, record.started_at, det)

    def _control(self, record: RequestRecord, t: float, anomalous: bool) -> None:
        control = self.control
        cb = control[-1] if control else None
        if cb is None or cb.t < t:
            cb = ControlBucket(t, *allocator_state(self.gate))
            control.append(cb)
        cb.n += 1
        opt = record.optimization
        if opt == "throttle" or record.status == 429:
            cb.throttled += 1
            client = record.client or "unknown"
            clients = self.throttled_clients
            clients.put(client, clients.get(client, 0) + 1)
        elif opt == "shed":
            cb.shed += 1
        if anomalous:
            cb.anomalies += 1
        if not cb.n & 31:  # the allocator's state, sampled: a few getattr each time
            limit, in_flight = allocator_state(self.gate)
            if limit is not None:
                cb.limit = limit
            if in_flight is not None:
                cb.in_flight = in_flight

    def _detection(self, endpoint: str, at: float, det: Any) -> None:
        fields = detection_fields(det)
        ident = (endpoint, str(fields["kind"]), str(fields["fingerprint"] or fields["sql"]))
        entry = self.detections.get(ident)
        if entry is None:
            own = getattr(det, "id", None)
            entry = {"id": str(own) if own is not None else f"detection-{next(self._ids)}",
                     "endpoint": endpoint, "first_at": at, "seen": 0, **fields}
            entry["_obj"] = (endpoint, det)  # how the registry's prediction is found
            self.detections.put(ident, entry)
        else:
            self.detections.touch(ident)
            entry.update(fields)
            entry["_obj"] = (endpoint, det)
        entry["seen"] += 1
        entry["last_at"] = at

    # --- persistence (registered with the registry as the "dashboard" component) ------

    def state(self) -> dict[str, Any]:
        """What the dashboard lists, for a restart to show again: the counters (added to
        those restored before), recent anomalies, query problems, incidents, feedback."""
        counters = self.totals(self.gate.counters)
        with self.lock:
            anomalies = [self._with_path(_plain(r), r) for r in self.anomalies]
            detections = [_plain(r) for r in self.detections.values()]
            feedback = dict(self.feedback)
        incidents = [_plain(i) for i in list(self.gate.incidents)]
        return {"counters": counters, "anomalies": anomalies, "detections": detections,
                "incidents": incidents, "feedback": feedback}

    def load_state(self, data: dict[str, Any]) -> None:
        counters = data.get("counters") or {}
        self.restored = {str(k): int(v) for k, v in counters.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}
        with self.lock:
            older = [r for r in data.get("anomalies") or () if isinstance(r, dict)]
            merged = older + list(self.anomalies)
            self.anomalies.clear()
            self.anomalies.extend(merged)  # the newest max_recent stay
            for row in list(data.get("detections") or ())[-self.max_recent:]:
                if isinstance(row, dict):
                    ident = (str(row.get("endpoint")), str(row.get("kind")),
                             str(row.get("fingerprint") or row.get("sql")))
                    if ident not in self.detections:
                        self.detections.put(ident, row)
            for k, v in dict(data.get("feedback") or {}).items():
                self.feedback.setdefault(str(k), bool(v))
        incidents = self.gate.incidents
        if not incidents:
            incidents.extend(i for i in data.get("incidents") or () if isinstance(i, dict))

    def totals(self, counters: dict[str, Any]) -> dict[str, Any]:
        """``counters`` plus the restored ones (a fresh dict)."""
        out = dict(counters)
        for k, v in self.restored.items():
            if isinstance(out.get(k, 0), (int, float)):
                out[k] = out.get(k, 0) + v
        return out

    # --- readers ----------------------------------------------------------------------

    def endpoint_series(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            buckets = list(self.series.get(key, ()))
        return [b.as_dict() for b in buckets]

    def endpoints(self) -> list[str]:
        with self.lock:
            return list(self.series)

    def control_series(self) -> list[dict[str, Any]]:
        with self.lock:
            return [b.as_dict() for b in self.control]

    def recent_anomalies(self, limit: int = 50,
                         resolve: Callable[[object], str | None] | None = None
                         ) -> list[dict[str, Any]]:
        """Newest first. ``resolve(obj)`` maps the underlying record to the registry's
        prediction id (the one ``gate.feedback`` takes), when there is one."""
        with self.lock:
            rows = list(self.anomalies)[-limit:]
        return [self._public(r, resolve) for r in reversed(rows)]

    def recent_detections(self, limit: int = 50,
                          resolve: Callable[[object], str | None] | None = None
                          ) -> list[dict[str, Any]]:
        with self.lock:
            rows = list(self.detections.values())[-limit:]
        return [self._public(r, resolve) for r in reversed(rows)]

    def _with_path(self, out: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """``out``, an anomaly ``row`` as it leaves (JSON, the state file), with the
        row's path folded here, off the request path (:mod:`pulsegate.export.paths`).
        A row restored from the state file has its exported ``path`` already."""
        if "_path" in row:
            out["path"] = exported_path(self.gate, row["_path"])
        return out

    def _public(self, row: dict[str, Any],
                resolve: Callable[[object], str | None] | None) -> dict[str, Any]:
        out = self._with_path({k: v for k, v in row.items() if not k.startswith("_")}, row)
        if resolve is not None:
            try:
                pid = resolve(row["_obj"])
            except Exception:
                pid = None
            if pid is not None:
                out["id"] = pid
        out["feedback"] = self.feedback.get(out["id"])
        return out

    def top_throttled(self, limit: int = 10) -> list[dict[str, Any]]:
        with self.lock:
            items = sorted(self.throttled_clients.items(), key=lambda kv: -kv[1])[:limit]
        return [{"client": k, "throttled": v} for k, v in items]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its live objects (``_obj``), with JSON-safe values."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
            for k, v in row.items() if not k.startswith("_")}
