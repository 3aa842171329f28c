"""A detection stream: anomalies, incidents, query detections, applied actions, the
healer's switches and the advisor's findings, published to Redis Streams and/or a
webhook (issue 22 item 6).

Event kinds (``type``): ``anomaly``, ``detection``, ``action`` (one request's applied
optimization), ``incident`` (with its ``incident_id``, ``"<endpoint>@<at, 3 decimals>"``),
``healing`` (a healing action switched ``state`` ``on`` or ``off``: ``action``,
``endpoint``, ``what``, the ``incident_id`` of the incident that armed it, ``at``) and
``finding``.

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
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.incidents import Incident
    from pulsegate.plugins import Host
    from pulsegate.records import RequestRecord

__all__ = ["DetectionStream", "RedisStreamSink", "Sink", "WebhookSink"]


def incident_id(endpoint: str, at: float) -> str:
    """An incident's name on the stream: its endpoint and flag time (wall, epoch s),
    ``"GET /slow@1700000150.0"`` -- what joins a ``healing`` event to its ``incident``."""
    return f"{endpoint}@{round(at, 3)}"


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
            sig = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Pulsegate-Signature"] = f"sha256={sig}"
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
        self.findings_seen: set[tuple[str, str]] = set()
        #: the healer's switches, as events, waiting for the next run
        self.switches: deque[dict[str, Any]] = deque(maxlen=max(1, int(buffer)))
        gate.plugs.add_switch_listener(self._switched)
        gate.notable_listeners.append(self._listen)
        gate.scheduler.every(interval, self.run, "detection-stream")
        gate.plugs.add_stats("stream", self)

    def _listen(self, record: RequestRecord, ctx: RequestContext) -> None:
        # the request path: keep references only (dicts of detections are built later);
        # an anomalous record is the newest of recent_anomalies when this runs
        recent = self.gate.recent_anomalies
        if len(self.inbox) == self.inbox.maxlen:
            self.dropped += 1
        self.inbox.append((record, bool(recent) and recent[-1] is record,
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
        advisor = self.gate.plugs.reports.get("advisor")
        if advisor is not None:
            for f in advisor().get("findings", []):
                key = (str(f.get("kind")), str(f.get("fingerprint")))
                if key not in self.findings_seen and len(self.findings_seen) < 100_000:
                    self.findings_seen.add(key)
                    out.append({"type": "finding", "at": round(self.gate.wall(), 3), **f})
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
                "sinks": {b.sink.name: b.stats() for b in self.outboxes}}
