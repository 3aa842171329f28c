"""The detection stream: real Redis Streams (XADD MAXLEN, a consumer group reads it) and
a real webhook on loopback, from the scheduler's job, with back-pressure."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from fakeclock import FakeClock
from pulsegate import ConfigError, PulseGate
from pulsegate.export.stream import DetectionStream, RedisStreamSink, WebhookSink
from pulsegate.incidents import Incident
from pulsegate.queries.events import QueryEvent
from pulsegate.queries.ranking import ranked_findings
from pulsegate.records import RequestInfo

# the N+1 in these requests is the point: the pytest plugin must not report it
pytestmark = pytest.mark.pulsegate(nplusone="off")


def traffic(gate: PulseGate, clock: FakeClock, slow_ms: float = 3000.0) -> None:
    """50 ordinary requests, one very slow one (an anomaly), one with an N+1."""
    for i in range(52):
        ctx = gate.begin(RequestInfo("GET", "/items", route="/items"))
        assert ctx is not None
        if i == 51:
            for k in range(8):
                ctx.add_query(QueryEvent(sql="SELECT * FROM tag WHERE item_id = ?",
                                         duration_ms=0.5, params_hash=k, call_site="app.py:9"))
        clock.t += slow_ms / 1000.0 if i == 50 else 0.010 + 0.001 * (i % 3)
        gate.response_headers(ctx, 200)
        gate.finish(ctx, 200)


@pytest.fixture()
def gate() -> Iterator[tuple[PulseGate, FakeClock]]:
    clock = FakeClock(100.0)
    g = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t)
    yield g, clock
    g.close()


@pytest.mark.service
def test_redis_stream_with_a_consumer_group(redis_service: Any, gate: Any) -> None:
    g, clock = gate
    client = redis.Redis.from_url(redis_service.url)
    client.delete("pg:test")
    stream = DetectionStream(g, [RedisStreamSink(redis_service.url, "pg:test")])
    traffic(g, clock)
    stream.run()
    entries = client.xrange("pg:test")
    types = [e[1][b"type"].decode() for e in entries]
    assert "anomaly" in types and "detection" in types
    detection = json.loads(next(e[1][b"data"] for e in entries if e[1][b"type"] == b"detection"))
    assert detection["kind"] == "n_plus_one" and detection["endpoint"] == "GET /items"
    assert "?" in detection["sql"]  # the redacted fingerprint, never values
    client.xgroup_create("pg:test", "ops", id="0")
    got = client.xreadgroup("ops", "worker-1", {"pg:test": ">"})
    assert len(got[0][1]) == len(entries)
    assert g.stats()["stream"]["sinks"]["redis:pg:test"]["sent"] == len(entries)


@pytest.mark.service
def test_redis_maxlen_caps_the_stream(redis_service: Any, gate: Any) -> None:
    g, clock = gate
    client = redis.Redis.from_url(redis_service.url)
    client.delete("pg:capped")
    stream = DetectionStream(g, [RedisStreamSink(redis_service.url, "pg:capped", maxlen=3,
                                                 approximate=False)])
    for _ in range(3):
        traffic(g, clock)
        stream.run()
    assert client.xlen("pg:capped") == 3


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, Any], str | None, bytes]] = []
    failing = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Hook.failing:
            self.send_response(500)
        else:
            Hook.received.append((json.loads(body), self.headers.get("X-Pulsegate-Signature"),
                                  body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def hook() -> Iterator[str]:
    Hook.received = []
    Hook.failing = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_signed_batches(hook: str, gate: Any) -> None:
    g, clock = gate
    DetectionStream(g, [WebhookSink(hook, secret="s3cret")], batch=2)
    traffic(g, clock)
    g.scheduler.run_all()  # the job, as the scheduler thread runs it
    (payload, signature, body), = Hook.received
    assert len(payload["events"]) == 2  # one batch per run
    assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_webhook_back_pressure_and_recovery(hook: str, gate: Any) -> None:
    g, clock = gate
    now = [0.0]
    stream = DetectionStream(g, [WebhookSink(hook)], buffer=3, clock=lambda: now[0])
    Hook.failing = True
    for _ in range(3):
        traffic(g, clock)
        stream.run()
        now[0] += 0.5  # retried only after its back-off
    sink = g.stats()["stream"]["sinks"][f"webhook:{hook}"]
    assert sink["failures"] == 2 and sink["backlog"] == 3 and sink["dropped"] > 0
    assert sink["backoff_s"] == 2.0
    Hook.failing = False
    now[0] += 10
    stream.run()
    assert len(Hook.received) == 1 and len(Hook.received[0][0]["events"]) == 3
    assert g.stats()["stream"]["sinks"][f"webhook:{hook}"]["backlog"] == 0


def test_only_notable_requests_reach_the_listener(gate: Any) -> None:
    g, clock = gate
    stream = DetectionStream(g, [])
    assert stream._listen in g.notable_listeners and stream._listen not in g.listeners


def test_bad_webhook_url() -> None:
    with pytest.raises(ConfigError):
        WebhookSink("file:///etc/passwd")


class Memory:
    name = "memory"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, events: Any) -> None:
        self.events.extend(events)


def seconds(g: PulseGate, clock: FakeClock, n: int, ms: float, path: str = "/slow") -> None:
    """``n`` seconds of 5 requests a second at ``ms`` each; the scheduler's jobs (the
    healer's, then the stream's) run after each second."""
    for _ in range(n):
        for _ in range(5):
            start = clock.t
            ctx = g.begin(RequestInfo("GET", path, route=path))
            assert ctx is not None
            clock.t += ms / 1000
            g.response_headers(ctx, 200)
            g.finish(ctx, 200)
            clock.t = start + 0.2
        g.scheduler.run_all()


def test_the_healers_switches_are_on_the_stream() -> None:
    clock = FakeClock(100.0)
    g = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t, aggregation_window=1,
                  healing_actions=[{"do": "degrade"}], healing_seconds=20)
    sink = Memory()
    stream = DetectionStream(g, [sink])
    try:
        seconds(g, clock, 150, 10.0)  # the baseline
        for _ in range(30):  # /slow regresses until an incident is flagged
            seconds(g, clock, 1, 80.0)
            if any(e["type"] == "healing" for e in sink.events):
                break
        incident = next(e for e in sink.events if e["type"] == "incident")
        on, = [e for e in sink.events if e["type"] == "healing"]
        assert on == {"type": "healing", "at": on["at"], "action": "degrade", "state": "on",
                      "endpoint": "GET /slow", "what": "degrade GET /slow",
                      "incident_id": incident["incident_id"]}
        assert incident["incident_id"] == f"GET /slow@{round(incident['at'], 3)}"
        assert sink.events.index(incident) < sink.events.index(on)
        assert on["at"] == round(1.7e9 + clock.t, 3)
        # it recovers: degrade stays on for healing_seconds after the last incident
        seconds(g, clock, 60, 10.0)
        switches = [(e["state"], e["incident_id"]) for e in sink.events
                    if e["type"] == "healing"]
        assert switches[0] == ("on", incident["incident_id"])
        assert switches[-1][0] == "off" and [s for s, _ in switches] == ["on", "off"]
        assert not g.control.healer.active() and stream.stats()["dropped"] == 0
    finally:
        g.close()


def test_the_switch_queue_is_bounded() -> None:
    clock = FakeClock(100.0)
    g = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t,
                  healing_actions=[{"do": "degrade"}], healing_seconds=1,
                  healing_max_per_hour=10)
    stream = DetectionStream(g, [], buffer=3)
    try:
        healer = g.control.healer
        for k in range(5):  # five incidents on five endpoints: five "on" switches
            healer.incident(Incident(f"GET /e{k}", 0.0, 1.7e9, 80.0, 10.0, 8.0, 70.0,
                                     100, 3, 0.9))
        assert len(stream.switches) == 3 and stream.stats()["dropped"] == 2
        assert [e["endpoint"] for e in stream.events() if e["type"] == "healing"] == [
            "GET /e2", "GET /e3", "GET /e4"]
    finally:
        g.close()


def n_plus_one(g: PulseGate, clock: FakeClock, n: int, ms: float, table: str = "tag",
               path: str = "/items") -> None:
    """``n`` requests, each running one N+1 of 8 statements of ``ms`` each on ``table``."""
    for _ in range(n):
        ctx = g.begin(RequestInfo("GET", path, route=path))
        assert ctx is not None
        for k in range(8):
            ctx.add_query(QueryEvent(sql=f"SELECT * FROM {table} WHERE item_id = ?",
                                     duration_ms=ms, params_hash=k, call_site="app.py:9"))
        clock.t += 0.010
        g.response_headers(ctx, 200)
        g.finish(ctx, 200)


def findings(sink: Memory, event: str | None = None) -> list[dict[str, Any]]:
    out = [e for e in sink.events if e["type"] == "finding"]
    return [e for e in out if e["event"] == event] if event else out


def test_a_finding_whose_saving_grows_tenfold_is_sent_again_once_with_the_rankings_figures(
        gate: Any) -> None:
    g, clock = gate
    sink = Memory()
    stream = DetectionStream(g, [sink], finding_update_every=60.0, clock=clock)
    n_plus_one(g, clock, 10, 0.5)  # 10 requests of 4 ms
    stream.run()
    new, = findings(sink)
    assert new["event"] == "new" and new["kind"] == "n_plus_one" and new["rank"] == 1
    assert new["finding_id"] == f"GET /items|n_plus_one|{new['fingerprint']}"
    first = new["saving_ms_per_min"]
    n_plus_one(g, clock, 1, 0.5)  # jitter: 10 % more
    clock.t += 61
    stream.run()
    assert findings(sink, "update") == []
    n_plus_one(g, clock, 45, 1.0)  # 360 ms more: the saving x 9.8 (404 ms over 61.5 s)
    stream.run()
    update, = findings(sink, "update")
    ranked, = ranked_findings(g.plugs.catalog.query_insights(), [], g.wall())
    assert update["finding_id"] == new["finding_id"] and update["rank"] == 1
    assert update["saving_ms_per_min"] == ranked["saving_ms_per_min"] > 9.5 * first
    assert update["roi"] == ranked["roi"]
    assert update["changed"] == ["saving_ms_per_min", "roi"]
    assert update["previous"]["saving_ms_per_min"] == first
    n_plus_one(g, clock, 46, 10.0)  # x 10 again, a second after that send: held ...
    clock.t += 1
    stream.run()
    assert len(findings(sink)) == 2
    clock.t += 60
    stream.run()  # ... until a minute has passed since it
    again = findings(sink)[-1]
    assert again["event"] == "update" and again["previous"]["saving_ms_per_min"] == \
        update["saving_ms_per_min"]
    for _ in range(3):  # nothing changed since: not sent again
        clock.t += 61
        stream.run()
    assert len(findings(sink)) == 3 and stream.stats()["findings"]["updates"] == 2


def test_a_finding_that_becomes_the_top_one_is_sent_with_its_new_rank(gate: Any) -> None:
    g, clock = gate
    sink = Memory()
    stream = DetectionStream(g, [sink], finding_update_every=60.0, clock=clock)
    n_plus_one(g, clock, 10, 0.5, "tag", "/a")
    n_plus_one(g, clock, 6, 0.5, "note", "/b")
    stream.run()
    assert [(e["endpoint"], e["rank"]) for e in findings(sink)] == [("GET /a", 1),
                                                                   ("GET /b", 2)]
    n_plus_one(g, clock, 5, 0.5, "note", "/b")  # x 1.83: under the factor, past /a
    clock.t += 61
    stream.run()
    moved = {e["endpoint"]: (e["rank"], e["previous"]["rank"], e["changed"])
             for e in findings(sink, "update")}
    assert moved == {"GET /b": (1, 2, ["rank"]), "GET /a": (2, 1, ["rank"])}


def test_the_findings_kept_are_bounded_under_many_fingerprints(gate: Any) -> None:
    g, clock = gate
    sink = Memory()
    stream = DetectionStream(g, [sink], max_findings=5, batch=1000, clock=clock)
    for k in range(20):
        n_plus_one(g, clock, 1 + k, 0.5, f"t{k}")
    stream.run()
    sent = findings(sink)
    assert [e["rank"] for e in sent] == [1, 2, 3, 4, 5]  # the top five, by the ranking
    assert {e["endpoint"] for e in sent} == {"GET /items"} and sent[0]["ranked"] == 20
    stats = stream.stats()["findings"]
    assert stats["tracked"] == 5 and stats["untracked"] == 15
    for _ in range(3):  # still ranked: kept, and nothing sent again
        clock.t += 61
        stream.run()
    assert len(findings(sink)) == 5 and len(stream.findings_seen) == 5
