"""Broker queues watched from any process: length and the oldest message (Redis), a stall
flagged when the oldest message stops moving -- a worker that died is seen by the
producer. The probe's arithmetic on simulated samples; RQ on a real Redis (Celery's
layout is tested with the real worker in test_jobs_celery.py)."""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Iterator

import jobs_rq_tasks as tasks
import prometheus_client
import pytest
import redis
from rq import Queue

from pulsegate.engine import PulseGate
from pulsegate.jobs import rq as pg_rq
from pulsegate.jobs.broker import CELERY, RQ, BrokerQueues, QueueProbe, watch
from services import RedisServer, redis_server


def healthy_then_dead(seed: int, hours: float, dead_after: float | None) -> tuple[int, float | None]:
    """A backlogged queue sampled every 10 s: one worker takes a job every 20-60 s
    (uniform), so the oldest message changes at that rhythm; after ``dead_after``
    seconds (None: never) the worker is gone. Returns (stalls flagged, first flag time)."""
    rng = random.Random(seed)
    probe = QueueProbe("mail", CELERY, floor_s=300.0)
    head, next_take, t, stalls, first = 0, rng.uniform(20, 60), 0.0, 0, None
    while t < hours * 3600.0:
        t += 10.0
        while t >= next_take and (dead_after is None or next_take < dead_after):
            head += 1
            next_take += rng.uniform(20, 60)
        if probe.sample(t, 50, head, None) is not None:
            stalls += 1
            first = t if first is None else first
    return stalls, first


def test_a_busy_healthy_queue_never_stalls() -> None:
    for seed in (1, 2, 3):
        assert healthy_then_dead(seed, hours=24, dead_after=None) == (0, None)


def test_a_dead_worker_is_flagged_once_after_the_learnt_line() -> None:
    for seed in (1, 2, 3):
        stalls, first = healthy_then_dead(seed, hours=3, dead_after=3600.0)
        assert stalls == 1 and first is not None
        # the head in place at the death was taken at most 60 s before it; the line is
        # the floor (300 s) since dwells of 20-60 s learn m + max(m, 8σ) < 300 s
        assert 3600.0 + 240.0 <= first <= 3600.0 + 320.0, first


def test_a_stall_is_never_learnt_as_normal() -> None:
    probe = QueueProbe("mail", CELERY, floor_s=60.0)
    for i in range(30):  # a head every 30 s
        probe.sample(30.0 * i, 5, i, None)
    t0 = 30.0 * 29
    flagged = [t for t in range(int(t0) + 10, int(t0) + 20_000, 10)
               if probe.sample(float(t), 5, "stuck", None) is not None]
    assert len(flagged) == 1 and probe.stalled
    assert probe.stats()["dwell_mean_s"] < 60.0  # the stuck head's dwell is not learnt while it lasts
    probe.sample(t0 + 20_010.0, 5, "moved", None)
    assert not probe.stalled and probe.stats()["dwell_mean_s"] < 60.0  # nor once it has ended
    assert probe.sample(t0 + 20_080.0, 5, "moved", None) is not None  # the next outage


def test_an_empty_queue_is_no_stall() -> None:
    probe = QueueProbe("mail", RQ, floor_s=60.0)
    for t in range(0, 10_000, 10):
        assert probe.sample(float(t), 0, None, None) is None


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture()
def conn(server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(server.url)
    c.flushdb()
    yield c
    c.close()


class SimpleWorker(pg_rq.SimpleWorker):
    def subscribe(self) -> None:  # see test_jobs_rq.py
        pass


def test_rq_queues_with_no_worker_stall_from_the_producer_side(conn: redis.Redis) -> None:
    gate = PulseGate(log_events=False, queue_stall_seconds=1.0, prometheus=True,
                     prometheus_path=None)
    try:
        queue = Queue(f"q{uuid.uuid4().hex[:8]}", connection=conn)
        idle = Queue(f"idle{uuid.uuid4().hex[:8]}", connection=conn)
        for i in range(3):
            queue.enqueue(tasks.add, i, 1)
        broker = pg_rq.watch_queues([queue, idle], gate=gate, interval=3600.0)
        assert broker.poll(gate) == []
        row = gate.stats()["job_queues"][queue.name]
        assert row["length"] == 3 and row["head_age_s"] >= 0.0 and not row["stalled"]
        assert gate.stats()["job_queues"][idle.name]["length"] == 0
        text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
        assert f'pulsegate_queue_length{{queue="{queue.name}"}} 3.0' in text
        time.sleep(1.2)
        flagged = broker.poll(gate)
        assert [i["endpoint"] for i in flagged] == [f"QUEUE {queue.name}"]
        assert flagged[0]["metric"] == "starvation" and flagged[0]["queue_length"] == 3
        assert flagged[0] in list(gate.incidents)
        assert broker.poll(gate) == []  # one flag per episode
        text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
        assert f'pulsegate_queue_stalled{{queue="{queue.name}"}} 1.0' in text
        SimpleWorker([queue], connection=conn, gate=gate).work(burst=True)
        broker.poll(gate)
        row = gate.stats()["job_queues"][queue.name]
        assert row["length"] == 0 and not row["stalled"] and row["stalls"] == 1
    finally:
        gate.close()


def test_a_broker_that_is_down_is_counted_not_raised() -> None:
    gate = PulseGate(log_events=False)
    try:
        client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        broker = watch(gate, client, ["celery"], CELERY, interval=3600.0)
        assert broker.poll(gate) == [] and broker.errors == 1
    finally:
        gate.close()


def test_queues_past_the_cap_are_dropped_not_watched(conn: redis.Redis) -> None:
    broker = BrokerQueues(conn, [f"q{i}" for i in range(40)], RQ)
    assert len(broker.probes) == 32 and broker.dropped == 8


def test_an_rq_worker_leaves_the_signal_handlers_as_it_found_them(conn: redis.Redis) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    queue = Queue(f"q{uuid.uuid4().hex[:8]}", connection=conn)
    queue.enqueue(tasks.add, 1, 2)
    gate = PulseGate(log_events=False)
    try:
        SimpleWorker([queue], connection=conn, gate=gate).work(burst=True)
    finally:
        gate.close()
    assert {s: signal.getsignal(s) for s in before} == before




def test_celery_priority_lists_follow_the_transport_options() -> None:
    """Keys as kombu's Redis transport names them: ``priority_steps``, ``sep`` and
    ``global_keyprefix`` from ``broker_transport_options``; step 0 is the queue's list."""
    import doctest

    from pulsegate.jobs import celery as pg_celery

    assert doctest.testmod(pg_celery).failed == 0
    rows = pg_celery.priority_lists("mail", {"priority_steps": list(range(10)), "sep": ":",
                                             "global_keyprefix": "app1_"})
    assert [r.key for r in rows] == ["app1_mail"] + [f"app1_mail:{i}" for i in range(1, 10)]
    assert rows[0].name == "mail" and not rows[0].optional
    assert rows[9].name == "mail [priority 9]" and rows[9].optional
    assert [r.key for r in pg_celery.priority_lists("mail", {})] == [
        "mail", "mail\x06\x163", "mail\x06\x166", "mail\x06\x169"]


def test_a_list_is_read_at_its_own_key_and_shown_once_it_held_a_message(
        conn: redis.Redis) -> None:
    from pulsegate.jobs.broker import QueueList

    name = f"q{uuid.uuid4().hex[:8]}"
    conn.lpush(f"{name}-low", b'{"headers": {}}')
    try:
        broker = BrokerQueues(conn, [QueueList(name, None),
                                     QueueList(f"{name} low", f"{name}-low", optional=True),
                                     QueueList(f"{name} high", f"{name}-high", optional=True)],
                              CELERY)
        gate = PulseGate(log_events=False)
        try:
            broker.poll(gate)
        finally:
            gate.close()
        assert set(broker.stats()) == {name, f"{name} low"}
        assert broker.stats()[f"{name} low"]["length"] == 1
    finally:
        conn.delete(f"{name}-low")


class _Pipe:
    """A redis-py pipeline's shape over a dict of lists (no server)."""

    def __init__(self, lists: dict[str, list[bytes]]) -> None:
        self.lists, self.replies = lists, []  # type: list[object]

    def llen(self, key: str) -> None:
        self.replies.append(len(self.lists.get(key, [])))

    def lindex(self, key: str, index: int) -> None:
        items = self.lists.get(key, [])
        self.replies.append(items[index] if items else None)

    def execute(self) -> list[object]:
        return self.replies


class _Client:
    def __init__(self, lists: dict[str, list[bytes]]) -> None:
        self.lists = lists

    def pipeline(self, transaction: bool = False) -> _Pipe:
        return _Pipe(self.lists)


def test_a_huge_head_is_kept_as_a_digest_and_its_change_still_seen() -> None:
    """Attack probe: a message's size is the producer's (a user's upload in a task's
    arguments). The probe used to keep the whole oldest message between samples; now 16
    bytes, whatever its size, and a new head of the same size is still a change."""
    big = b'{"headers": {}, "body": "' + b"x" * 8_000_000 + b'"}'
    lists = {"mail": [big]}
    broker = BrokerQueues(_Client(lists), ["mail"], CELERY)
    gate = PulseGate(log_events=False)
    try:
        broker.poll(gate)
        first = broker.probes[0].head
        assert isinstance(first, bytes) and len(first) == 16
        broker.poll(gate)
        assert broker.probes[0].head == first  # the same message: the same head
        lists["mail"] = [big.replace(b"xxx", b"xxy", 1)]
        broker.poll(gate)
        assert broker.probes[0].head not in (first, None)
        assert len(broker.probes[0].head) == 16  # type: ignore[arg-type]
    finally:
        gate.close()


def test_a_head_nested_past_the_json_parsers_depth_blinds_no_queue() -> None:
    """Attack probe (hsec6): whoever can publish to the broker chooses the oldest
    message. One nested 100 000 deep (under MAX_HEAD_BYTES) raised RecursionError out
    of the poll (only ValueError was caught), at every poll while it stayed the head:
    no queue after it was sampled -- the stalled head the probe exists to see blinded
    it. Now its publish time is unknown and every queue is sampled."""
    nested = b"[" * 100_000 + b"]" * 100_000
    lists = {"mail": [nested], "reports": [b'{"headers": {}}']}
    broker = BrokerQueues(_Client(lists), ["mail", "reports"], CELERY)
    gate = PulseGate(log_events=False)
    try:
        broker.poll(gate)
        assert [p.head is not None for p in broker.probes] == [True, True]
        assert broker.stats()["reports"]["length"] == 1
    finally:
        gate.close()


def test_past_the_cap_celery_priority_lists_are_dropped_before_any_queue() -> None:
    """Nine queues with kombu's default steps are 36 lists, past the cap of 32: every
    queue's own list is still watched (a priority list nobody publishes to was taking
    the ninth queue's place)."""
    from types import SimpleNamespace

    from pulsegate.jobs.celery import watch_queues

    app = SimpleNamespace(conf=SimpleNamespace(
        broker_url="redis://127.0.0.1:1/0", task_default_queue="celery", task_queues=None,
        broker_transport_options={}))
    queues = [f"q{i}" for i in range(9)]
    gate = PulseGate(log_events=False)
    try:
        broker = watch_queues(app, gate=gate, queues=queues, interval=3600.0)
        names = [p.name for p in broker.probes]
        assert names[:9] == queues and len(names) == 32 and broker.dropped == 4
    finally:
        gate.close()
