"""The demo's detection stream (issue 22 item 6, docs/advisor.md "Detection stream").

A :class:`~pulsegate.export.stream.DetectionStream` with one
:class:`~pulsegate.export.stream.WebhookSink` posts the run's anomalies, query
detections, applied actions, incidents, healing switches and the advisor's findings, from
the scheduler thread, to a :class:`Receiver`: a small HTTP server of its own on a
loopback port, standing in for the other system a webhook feeds (no Redis needed). It is
not the demo app, so nothing it receives is measured, rate-limited or shed, and it stays
up after the app stops, for the stream's last run. It checks each post's HMAC signature,
as a real receiver would. The report says what arrived.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from pulsegate.export.stream import DetectionStream, WebhookSink, signature

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate

__all__ = ["Receiver", "attach", "stream_lines"]

#: the order the report lists the event types in
TYPES = ("anomaly", "detection", "action", "incident", "healing", "finding")
#: the fields an example line shows, per type (the rest of the event is left out)
EXAMPLE_FIELDS = {
    "anomaly": ("endpoint", "score", "metric", "duration_ms", "predicted_ms"),
    "detection": ("endpoint", "kind", "count", "suggestion"),
    "action": ("endpoint", "action", "status"),
    "incident": ("incident_id", "window_mean_ms", "expected_ms", "ratio", "requests"),
    "healing": ("what", "state", "incident_id"),
    "finding": ("event", "rank", "kind", "endpoint", "table", "fix", "confidence",
                "saving_ms_per_min", "roi", "changed"),
}
#: a finding is sent again at most this often (s); the demo runs for about 20 s
FINDING_UPDATE_EVERY = 5.0


class Receiver:
    """A webhook receiver on ``127.0.0.1``: keeps every event of every post whose
    ``X-Pulsegate-Signature`` is the HMAC-SHA256 of its body under ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self.posts = self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.receive(body, self.headers.get("X-Pulsegate-Signature") or "")
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the report says what arrived

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="demo-webhook", daemon=True)
        self.thread.start()

    def receive(self, body: bytes, sent: str) -> None:
        with self.lock:
            if not hmac.compare_digest(signature(body, self.secret), sent):
                self.refused += 1
                return
            self.posts += 1
            self.events.extend(json.loads(body)["events"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attach(gate: PulseGate) -> tuple[DetectionStream, Receiver]:
    """The stream (once a second, up to 500 events a post) and its receiver."""
    secret = secrets.token_hex(16)
    receiver = Receiver(secret.encode())
    stream = DetectionStream(gate, [WebhookSink(receiver.url, secret=secret)],
                             interval=1.0, batch=500, finding_update_every=FINDING_UPDATE_EVERY)
    return stream, receiver


def _example(event: dict[str, Any]) -> str:
    shown = {k: event[k] for k in EXAMPLE_FIELDS.get(str(event.get("type")), ())
             if event.get(k) is not None}
    for k, v in shown.items():
        if isinstance(v, float):
            shown[k] = round(v, 2)
        elif isinstance(v, str) and len(v) > 70:
            shown[k] = v[:67] + "..."
    return json.dumps(shown)


def stream_lines(stream: DetectionStream, receiver: Receiver) -> list[str]:
    """What arrived at the receiver: events per type, one example of each (the incident
    the first healing switch names, and that switch; the last event of the finding ranked
    first), new findings and updates, and the stream's own stats."""
    with receiver.lock:
        events = list(receiver.events)
        posts, refused = receiver.posts, receiver.refused
    counts = Counter(str(e.get("type")) for e in events)
    order = [t for t in TYPES if counts[t]] + sorted(set(counts) - set(TYPES))
    stats = stream.stats()
    sink: dict[str, Any] = next(iter(stats["sinks"].values()), {})
    lines = [f"detection stream: webhook {receiver.url} (HMAC-signed): {len(events)} events "
             f"in {posts} posts ({refused} refused): "
             + (", ".join(f"{t} {counts[t]}" for t in order) or "none"),
             f"  stream stats: sent {sink.get('sent', 0)}, dropped "
             f"{sink.get('dropped', 0) + stats['dropped']}, backlog {sink.get('backlog', 0)}, "
             f"failures {sink.get('failures', 0)}, pending {stats['pending']}"]
    switch = next((e for e in events if e.get("type") == "healing" and e.get("state") == "on"),
                  None)
    joined = switch and next((e for e in events if e.get("type") == "incident"
                              and e.get("incident_id") == switch.get("incident_id")), None)
    found = [e for e in events if e.get("type") == "finding"]
    top = next((e for e in reversed(found) if e.get("rank") == 1), None)
    for t in order:
        example = (joined if t == "incident" and joined else switch if t == "healing" and switch
                   else top if t == "finding" and top
                   else next(e for e in events if e.get("type") == t))
        lines.append(f"  {t}: {_example(example)}")
    if found:
        updates = sum(e.get("event") == "update" for e in found)
        lines.append(f"  findings: {len(found) - updates} new, {updates} updates (sent again "
                     f"when the rank's band, the saving or ROI x2 either way, or the fix "
                     f"changed; at most every {FINDING_UPDATE_EVERY:g} s a finding)")
    if switch is not None:
        lines.append(f"  the healing switch names incident {switch.get('incident_id')}: "
                     + ("the incident above" if joined else "no incident with that id arrived"))
    return lines
