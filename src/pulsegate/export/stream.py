r"""A detection stream: anomalies, incidents, query detections, applied actions, the
healer's switches and the advisor's findings, published to Redis Streams and/or a
webhook (issue 22 item 6).

Event kinds (``type``): ``anomaly``, ``detection``, ``action`` (one request's applied
optimization), ``incident`` (with its ``incident_id``, ``"<endpoint>@<at, 3 decimals>"``),
``healing`` (a healing action switched ``state`` ``on`` or ``off``: ``action``,
``endpoint``, ``what``, the ``incident_id`` of the incident that armed it, ``at``) and
``finding`` (a row of :func:`pulsegate.queries.ranking.ranked_findings`, the ranking
``report`` and the dashboard show: an N+1 insight or an advisor finding, with its
``finding_id``, ``rank`` among the ``ranked`` findings and ``event``).

**Findings, new and updated.** A finding is sent with ``event: "new"`` the first time it
is ranked, and again with ``event: "update"`` (same ``finding_id``, the ranking's figures
of now, ``changed`` and the ``previous`` figures) when what a consumer acts on changed
materially since it was last *sent* (drift that adds up counts; jitter does not):

* its rank left its band: 1, 2-3, 4-7, 8-15, 16 and below (``min(bit_length(rank), 5)``);
* its ``saving_ms_per_min`` or its ``roi`` changed by a factor :math:`\ge` ``FACTOR``
  (2) either way: :math:`\max(a, b) / \min(a, b) \ge 2`, a value appearing or going
  to 0 included;
* its ``fix`` text changed.

At most one update per finding per ``finding_update_every`` seconds (the stream's
clock); a change inside that time is sent after it if it still holds then. A finding no
longer ranked is not sent again. The findings seen are a
:class:`~pulsegate.bounded.BoundedLRU` of ``max_findings``: the least recently ranked is
forgotten first; when every one kept is still ranked, a new finding is not sent
(counted, ``findings.untracked``).
FACTOR and the bands are a policy (what a ticket or a channel should hear of), chosen,
not fitted to data.

Opt-in and off the request path::

    from pulsegate.export.stream import DetectionStream, RedisStreamSink, WebhookSink
    DetectionStream(gate, [RedisStreamSink("redis://127.0.0.1:6379/0"),
                           WebhookSink("https://hooks.example.com/pulsegate")])

* **request path**: one *notable* listener (the engine calls it only for an anomaly, an
  incident, a query detection or an applied optimization -- most requests are none of
  these) appends ``(record, detections)`` to a bounded deque: O(1), no I/O;
* **scheduler thread**, every ``interval`` seconds: turns what waits into events (plain
  JSON: the SQL only as its redacted fingerprint, as everywhere in pulsegate), picks up
  the incidents opened since the last run (``counters["incidents"]``), the healer's
  switches since the last run (its listener, called on the healer's own job, keeps at
  most ``buffer`` of them) and the advisor's new findings, fans them out to each sink's
  own queue and sends up to ``batch`` events per sink;
* **back-pressure**: each sink's queue holds at most ``buffer`` events; past it the
  oldest are dropped and counted (``dropped``). A failed send keeps the batch and backs
  the sink off exponentially (1 s, 2 s, ... at most ``max_backoff``); one slow or dead
  sink never holds up another, and never the application.

Redis: ``XADD <stream> MAXLEN ~ <maxlen> * type <type> at <epoch> data <json>`` -- one
entry per event, consumer-group friendly (``XREADGROUP``), length-capped by Redis itself.
Webhook: ``POST`` of ``{"events": [...]}`` as JSON, with ``X-Pulsegate-Signature:
sha256=<hex HMAC of the body>`` when a ``secret`` is given; any 2xx is success.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pulsegate.bounded import BoundedLRU
from pulsegate.queries.ranking import ranked_findings

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.incidents import Incident
    from pulsegate.plugins import Host
    from pulsegate.records import RequestRecord

__all__ = ["DetectionStream", "RedisStreamSink", "Sink", "WebhookSink", "signature"]


def signature(body: bytes, secret: bytes) -> str:
    """The ``X-Pulsegate-Signature`` of a webhook post: ``sha256=<hex HMAC-SHA256 of the
    body under the secret>``. A receiver recomputes it and compares with
    :func:`hmac.compare_digest`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def incident_id(endpoint: str, at: float) -> str:
    """An incident's name on the stream: its endpoint and flag time (wall, epoch s),
    ``"GET /slow@1700000150.0"`` -- what joins a ``healing`` event to its ``incident``."""
    return f"{endpoint}@{round(at, 3)}"


#: an update when the saving or the ROI changed by this factor, up or down
FACTOR = 2.0


def finding_id(row: dict[str, Any]) -> str:
    """A ranked finding's name on the stream: ``"<kind>|<fingerprint>"`` for an advisor
    finding (one per statement and rule), ``"<endpoint>|<kind>|<fingerprint>"`` for an
    N+1 insight (one per endpoint, as the registry keeps them)."""
    key = f"{row.get('kind')}|{row.get('fingerprint')}"
    return key if row.get("source") == "advisor" else f"{row.get('endpoint')}|{key}"


def _factor(a: Any, b: Any) -> float:
    """max/min of two figures (None or <= 0 as 0); 1 when both are 0, inf when one is."""
    x, y = (float(v) if isinstance(v, (int, float)) and v > 0 else 0.0 for v in (a, b))
    if x == y:
        return 1.0
    return float("inf") if min(x, y) == 0.0 else max(x, y) / min(x, y)


@dataclass
class _Sent:
    """What a consumer last heard of one finding, when (stream clock), and the run that
    last ranked it."""

    rank: int
    saving: Any
    roi: Any
    fix: Any
    at: float
    run: int

    def changes(self, row: dict[str, Any], rank: int) -> list[str]:
        out = ["rank"] if min(self.rank.bit_length(), 5) != min(rank.bit_length(), 5) else []
        if _factor(self.saving, row.get("saving_ms_per_min")) >= FACTOR:
            out.append("saving_ms_per_min")
        if _factor(self.roi, row.get("roi")) >= FACTOR:
            out.append("roi")
        return out + (["fix"] if self.fix != row.get("fix") else [])

    @classmethod
    def of(cls, row: dict[str, Any], rank: int, at: float, run: int) -> _Sent:
        return cls(rank, row.get("saving_ms_per_min"), row.get("roi"), row.get("fix"), at, run)

    def figures(self) -> dict[str, Any]:
        return {"rank": self.rank, "saving_ms_per_min": self.saving, "roi": self.roi,
                "fix": self.fix}


class Sink(Protocol):
    name: str

    def send(self, events: Sequence[dict[str, Any]]) -> None: ...


class RedisStreamSink:
    def __init__(self, url_or_client: Any, stream: str = "pulsegate:events",
                 maxlen: int = 10_000, approximate: bool = True) -> None:
        if isinstance(url_or_client, str):
            import redis

            self.client: Any = redis.Redis.from_url(url_or_client, socket_timeout=2.0,
                                                    socket_connect_timeout=2.0)
        else:
            self.client = url_or_client
        self.stream = stream
        self.maxlen = int(maxlen)
        #: ``MAXLEN ~`` (Redis trims whole macro nodes: cheap, the length a little over)
        self.approximate = approximate
        self.name = f"redis:{stream}"

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for e in events:
            pipe.xadd(self.stream, {"type": str(e.get("type")), "at": str(e.get("at")),
                                    "data": json.dumps(e, default=str)},
                      maxlen=self.maxlen, approximate=self.approximate)
        pipe.execute()


class WebhookSink:
    def __init__(self, url: str, timeout: float = 2.0, secret: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            from pulsegate.config_checks import ConfigError
            raise ConfigError("webhook url", url, "an http:// or https:// URL")
        self.url = url
        self.timeout = float(timeout)
        self.secret = secret.encode() if secret else None
        self.name = f"webhook:{url.split('?')[0]}"

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        body = json.dumps({"events": list(events)}, default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "pulsegate"}
        if self.secret is not None:
            headers["X-Pulsegate-Signature"] = signature(body, self.secret)
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if not 200 <= resp.status < 300:
                raise OSError(f"webhook answered {resp.status}")


class _Outbox:
    """One sink's bounded queue and back-off."""

    def __init__(self, sink: Sink, buffer: int) -> None:
        self.sink = sink
        self.queue: deque[dict[str, Any]] = deque()
        self.buffer = buffer
        self.sent = self.dropped = self.failures = 0
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_error: str | None = None

    def put(self, event: dict[str, Any]) -> None:
        self.queue.append(event)
        while len(self.queue) > self.buffer:
            self.queue.popleft()
            self.dropped += 1

    def flush(self, now: float, batch: int, max_backoff: float) -> None:
        if not self.queue or now < self.retry_at:
            return
        events = [self.queue[i] for i in range(min(batch, len(self.queue)))]
        try:
            self.sink.send(events)
        except Exception as exc:
            self.failures += 1
            self.last_error = type(exc).__name__
            self.backoff = min(max_backoff, self.backoff * 2 if self.backoff else 1.0)
            self.retry_at = now + self.backoff
            return
        for _ in events:
            self.queue.popleft()
        self.sent += len(events)
        self.backoff = 0.0
        self.last_error = None

    def stats(self) -> dict[str, Any]:
        return {"sent": self.sent, "dropped": self.dropped, "failures": self.failures,
                "backlog": len(self.queue), "backoff_s": self.backoff,
                "last_error": self.last_error}


class DetectionStream:
    def __init__(self, gate: Host, sinks: Sequence[Sink], *, interval: float = 1.0,
                 batch: int = 100, buffer: int = 10_000, max_backoff: float = 60.0,
                 finding_update_every: float = 60.0, max_findings: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gate = gate
        self.outboxes = [_Outbox(s, max(1, int(buffer))) for s in sinks]
        self.inbox: deque[tuple[RequestRecord, bool, list[Any]]] = deque(
            maxlen=max(1, int(buffer)))
        #: notable requests or healer switches lost because their queue was full (the
        #: job fell behind)
        self.dropped = 0
        self.batch = max(1, int(batch))
        self.max_backoff = float(max_backoff)
        self.clock = clock
        self.incidents_seen = int(gate.counters.get("incidents", 0))
        self.findings_seen: BoundedLRU[str, _Sent] = BoundedLRU(max_findings)
        self.finding_update_every = float(finding_update_every)
        self.runs = 0
        #: new findings not sent at the last run: every one kept was still ranked
        self.findings_untracked = 0
        self.finding_updates = 0
        #: the healer's switches, as events, waiting for the next run
        self.switches: deque[dict[str, Any]] = deque(maxlen=max(1, int(buffer)))
        gate.plugs.add_switch_listener(self._switched)
        gate.notable_listeners.append(self._listen)
        gate.scheduler.every(interval, self.run, "detection-stream")
        gate.plugs.add_stats("stream", self)

    def _listen(self, record: RequestRecord, ctx: RequestContext) -> None:
        # the request path: keep references only (dicts of detections are built later)
        if len(self.inbox) == self.inbox.maxlen:
            self.dropped += 1
        self.inbox.append((record, record.anomalous,
                           list(ctx.detections) if record.detections else []))

    def _switched(self, row: dict[str, Any], incident: Incident) -> None:
        # the healer's job (not the request path): one switch, as its event
        if len(self.switches) == self.switches.maxlen:
            self.dropped += 1
        self.switches.append({"type": "healing", "at": round(float(row["at"]), 3),
                              "action": row["action"], "state": row["state"],
                              "endpoint": row["endpoint"], "what": row["what"],
                              "incident_id": incident_id(incident.endpoint, incident.at)})

    def events(self) -> list[dict[str, Any]]:
        """Everything new since the last call, as plain events."""
        out: list[dict[str, Any]] = []
        while self.inbox:
            record, anomalous, detections = self.inbox.popleft()
            base = {"endpoint": record.endpoint, "at": round(record.started_at, 3)}
            if anomalous:
                out.append({"type": "anomaly", **base, "score": record.anomaly_score,
                            "metric": record.anomaly_metric, "duration_ms": record.duration_ms,
                            "predicted_ms": record.predicted_ms, "status": record.status})
            for d in detections:
                row = d.as_dict() if hasattr(d, "as_dict") else dict(d)
                out.append({"type": "detection", **base, **row})
            if record.optimization != "none":
                out.append({"type": "action", **base, "action": record.optimization,
                            "status": record.status})
        total = int(self.gate.counters.get("incidents", 0))
        fresh = total - self.incidents_seen
        self.incidents_seen = total
        if fresh > 0:
            log = list(self.gate.incidents)
            for inc in log[-fresh:]:
                out.append({"type": "incident", **inc, "incident_id": incident_id(
                    str(inc.get("endpoint")), float(inc.get("at", 0.0)))})
        while self.switches:  # after the incidents: an incident comes before its switch
            out.append(self.switches.popleft())
        return out + self.findings()

    def findings(self) -> list[dict[str, Any]]:
        """The ranked findings new since the last run, and those whose rank, saving, ROI
        or fix changed materially since they were sent (module docstring)."""
        catalog = self.gate.plugs.catalog
        report = self.gate.plugs.reports.get("advisor")
        advice = report().get("findings") if report is not None else None
        rows = ranked_findings(catalog.query_insights() if catalog is not None else [],
                               advice if isinstance(advice, list) else [], self.gate.wall())
        self.runs += 1
        self.findings_untracked = 0
        now, wall, seen, out = self.clock(), round(self.gate.wall(), 3), self.findings_seen, []
        for rank, row in enumerate(rows, 1):
            fid = finding_id(row)
            sent = seen.touch(fid)
            if sent is None:
                if len(seen) >= seen.maxsize and next(iter(seen.values())).run == self.runs:
                    self.findings_untracked += 1  # the oldest kept is still ranked
                    continue
                what: dict[str, Any] = {"event": "new"}
            else:
                sent.run = self.runs
                changed = sent.changes(row, rank) \
                    if now - sent.at >= self.finding_update_every else []
                if not changed:
                    continue
                what = {"event": "update", "changed": changed, "previous": sent.figures()}
                self.finding_updates += 1
            seen.put(fid, _Sent.of(row, rank, now, self.runs))
            out.append({"type": "finding", "at": wall, **row, "finding_id": fid,
                        "rank": rank, "ranked": len(rows), **what})
        return out

    def run(self) -> None:
        for event in self.events():
            for box in self.outboxes:
                box.put(event)
        now = self.clock()
        for box in self.outboxes:
            box.flush(now, self.batch, self.max_backoff)

    def stats(self) -> dict[str, Any]:
        return {"pending": len(self.inbox), "dropped": self.dropped,
                "findings": {"tracked": len(self.findings_seen),
                             "untracked": self.findings_untracked,
                             "updates": self.finding_updates},
                "sinks": {b.sink.name: b.stats() for b in self.outboxes}}
