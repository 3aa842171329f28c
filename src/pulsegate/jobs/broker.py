r"""The broker's side of a job queue: how many messages wait (Redis ``LLEN``) and whether
the oldest one moves -- starvation as the producer sees it (published, never started),
even when no worker is alive to report anything.

``watch(gate, client, queues, layout)`` samples every ``interval`` seconds on the gate's
scheduler thread, never on a request or a job: one pipeline of at most
:data:`MAX_QUEUES` queues, each ``LLEN`` plus ``LINDEX`` of its oldest message (Celery's
Redis transport pushes on the left and pops on the right: the oldest is at ``-1``; RQ
pushes on the right and pops on the left: ``0``). A head longer than
:data:`MAX_HEAD_BYTES` is not parsed. Queues are named by the application (few, low
cardinality); a message's body and arguments are never read.

**Stall.** A queue's *head* is its oldest waiting message. Each time the head changes
(a worker took it) the time it stayed at the head, its *dwell* :math:`\Delta`, is
learnt with the job tracker's estimator (:class:`~pulsegate.jobs.tracker.JobRate`:
smoothed mean :math:`m` and spread :math:`\sigma` of the dwells of 1 s and more; a
shorter one is far under the floor below). The queue *stalls* when the current
head has stayed longer than

.. math:: L = \max(F,\ m + \max(m,\ 8\sigma))

with :math:`F` = ``queue_stall_seconds`` (config ``units``, default 300 s) -- the
floor, and the whole line while fewer than ten dwells are known (a worker dead since
the start). The dwell in progress is never learnt, nor the dwell of a head that
stalled once it leaves, so an outage cannot teach the line to be longer. A stall is
flagged once per episode as an incident of ``QUEUE <queue>`` (metric
``"starvation"``, score :math:`\min(1, g / 2L)` for a dwell :math:`g`) through
:func:`pulsegate.unit_flags.flag`: the registry's alerts, the logs, ``gate.incidents``.

>>> probe = QueueProbe("celery", CELERY, floor_s=300.0)
>>> probe.sample(0.0, 3, "m1", 0.0) is None     # one message waiting since t=0
True
>>> probe.sample(290.0, 5, "m1", 0.0) is None   # still the same head, below the floor
True
>>> round(probe.sample(310.0, 6, "m1", 0.0)["score"], 3)  # stalled: flagged once
0.517
>>> probe.sample(320.0, 6, "m1", 0.0) is None   # the same episode
True
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulsegate.jobs.tracker import JobRate
from pulsegate.unit_flags import flag
from pulsegate.units import QUEUE

if TYPE_CHECKING:
    from pulsegate.units import UnitGate

__all__ = ["CELERY", "MAX_HEAD_BYTES", "MAX_QUEUES", "RQ", "BrokerQueues", "Layout",
           "QueueList", "QueueProbe", "watch"]

#: Queues sampled per broker at most (the rest are ignored, counted in ``dropped``).
MAX_QUEUES = 32
#: A head message longer than this is not parsed (its publish time is then unknown).
MAX_HEAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class Layout:
    """Where a job system keeps a queue in Redis: the list's key, the index of its
    oldest entry, and how to read a head entry's publish time (epoch s, or None)."""

    name: str
    key_format: str
    oldest_index: int


#: Celery's Redis transport (kombu): the list is the queue's name; LPUSH, BRPOP.
CELERY = Layout("celery", "{}", -1)
#: RQ: ``rq:queue:<name>`` holds job ids; RPUSH, LPOP.
RQ = Layout("rq", "rq:queue:{}", 0)


@dataclass(frozen=True)
class QueueList:
    """One Redis list to watch under ``name``: at ``key`` (None: the layout's key for
    the name); ``optional`` lists are left out of the stats until they hold a message."""

    name: str
    key: str | None
    optional: bool = False


def _celery_published(head: bytes) -> float | None:
    """The ``pulsegate_published`` header of a Celery message (set by the producer's
    ``before_task_publish``), else None."""
    if len(head) > MAX_HEAD_BYTES:
        return None
    try:
        headers = json.loads(head).get("headers") or {}
        published = headers.get("pulsegate_published")
        return float(published) if published is not None else None
    except (ValueError, TypeError, AttributeError, RecursionError):  # (a producer's bytes)
        return None


class QueueProbe:
    """One queue's samples: its length, its head and since when, the learnt dwell of a
    head, and whether the current head stalls (see the module doc)."""

    __slots__ = ("dwell", "floor_s", "head", "head_since", "key", "layout", "length", "name",
                 "sampled_at", "stalled", "stalls")

    def __init__(self, name: str, layout: Layout, floor_s: float,
                 key: str | None = None) -> None:
        self.name = name
        self.layout = layout
        self.key = layout.key_format.format(name) if key is None else key
        self.floor_s = floor_s
        self.dwell = JobRate()  # "starts" are head changes: its interval is a dwell
        self.length = 0
        self.head: object = None
        self.head_since = 0.0
        self.sampled_at: float | None = None
        self.stalled = False
        self.stalls = 0

    def limit(self) -> float:
        """:math:`L = \\max(F, m + \\max(m, 8\\sigma))`; ``F`` alone before ten dwells."""
        learnt = self.dwell.limit()
        return self.floor_s if learnt is None else max(self.floor_s, learnt)

    def sample(self, now: float, length: int, head: object,
               published: float | None) -> dict[str, Any] | None:
        """One sample at ``now`` (wall-clock s): ``length`` messages, the oldest one
        ``head`` (an identity: a digest of its bytes) published at ``published`` when known.
        Returns the incident fields when the queue starts to stall, else None."""
        self.length, self.sampled_at = length, now
        if length <= 0 or head is None:
            if self.head is not None:
                self._left(now)
            self.head, self.stalled = None, False
            return None
        if head != self.head:
            first = self.head is None and self.dwell.last_start is None
            if self.head is not None:
                self._left(now)
            elif self.dwell.last_start is not None:
                self.dwell.last_start = now  # the queue was empty: no dwell to learn
            since = now
            if first and published is not None and published < now:
                since = published  # waiting before the first sample
            self.head, self.head_since, self.stalled = head, since, False
            if self.dwell.last_start is None:
                self.dwell.last_start = since
        gap = now - self.head_since
        limit = self.limit()
        if self.stalled or gap <= limit:
            return None
        self.stalled = True
        self.stalls += 1
        dwells = self.dwell.rhythm  # (the dwells the line is learnt on)
        return {"window_mean_ms": gap * 1000.0, "limit_ms": limit * 1000.0,
                "expected_ms": dwells.mean * 1000.0 if dwells.count else None,
                "queue_length": length, "start": self.head_since,
                "score": min(1.0, gap / (2.0 * limit))}

    def _left(self, now: float) -> None:
        """The head left at ``now``: its dwell is learnt, unless it stalled (an outage
        is not what a dwell is: learning it would raise the line for the next one)."""
        if self.stalled:
            self.dwell.last_start = now
        else:
            self.dwell.start(now, None)

    def held_a_message(self) -> bool:
        """Whether any sample found a message here (a head now or a dwell begun)."""
        return self.head is not None or self.dwell.last_start is not None

    def stats(self) -> dict[str, Any]:
        dwells = self.dwell.rhythm
        return {"layout": self.layout.name, "length": self.length,
                "head_age_s": None if self.head is None or self.sampled_at is None
                else round(self.sampled_at - self.head_since, 3),
                "dwell_mean_s": round(dwells.mean, 3) if dwells.count else None,
                "limit_s": round(self.limit(), 3), "stalled": self.stalled,
                "stalls": self.stalls, "sampled_at": self.sampled_at}


class BrokerQueues:
    """The queues of one Redis broker watched for one gate: :meth:`poll` is the
    scheduler job (one pipeline per call; a broker that is down is counted in
    ``errors`` and tried again at the next interval).

    ``queues`` are names (the key from the layout) or ``QueueList`` rows: a list shown
    under its own name, kept out of the stats until it has held a message (a priority
    list nobody publishes to)."""

    def __init__(self, client: Any, queues: Iterable[str | QueueList], layout: Layout,
                 floor_s: float = 300.0) -> None:
        by_name: dict[str, QueueList] = {}
        for q in queues:
            row = q if isinstance(q, QueueList) else QueueList(str(q), None)
            by_name.setdefault(row.name, row)  # a name given twice: the first
        rows = list(by_name.values())
        self.client = client
        self.layout = layout
        self.probes = [QueueProbe(r.name, layout, floor_s, r.key) for r in rows[:MAX_QUEUES]]
        self.optional = {r.name for r in rows[:MAX_QUEUES] if r.optional}
        self.dropped = max(0, len(rows) - MAX_QUEUES)
        self.errors = 0
        self.lock = threading.Lock()

    def read(self) -> list[tuple[int, Any]]:
        """(length, head) of each queue, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for probe in self.probes:
            pipe.llen(probe.key)
            pipe.lindex(probe.key, self.layout.oldest_index)
        replies = pipe.execute()
        return [(int(replies[i] or 0), replies[i + 1]) for i in range(0, len(replies), 2)]

    def published(self, head: Any) -> float | None:
        if not isinstance(head, (bytes, str)):
            return None
        raw = head.encode() if isinstance(head, str) else head
        if self.layout is CELERY:
            return _celery_published(raw)
        if self.layout is RQ and len(raw) <= 200:
            return _rq_enqueued(self.client, raw)
        return None

    def poll(self, gate: UnitGate) -> list[dict[str, Any]]:
        """Sample every queue; flag the stalls (incidents returned)."""
        try:
            rows = self.read()
        except Exception:  # the broker is down or the client closed: next interval
            self.errors += 1
            return []
        out = []
        now = gate.wall()
        with self.lock:
            for probe, (length, message) in zip(self.probes, rows, strict=True):
                head = _identity(message)
                known = probe.head is not None and head == probe.head
                published = None if known or head is None else self.published(message)
                fields = probe.sample(now, length, head, published)
                if fields is not None:
                    score = fields.pop("score")
                    out.append(flag(gate, QUEUE, probe.name, "starvation", score, **fields))
        return out

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {p.name: p.stats() for p in self.probes
                    if p.name not in self.optional or p.held_a_message()}


def _identity(message: Any) -> object:
    """What tells a head from the next: a 16-byte digest of its bytes (a message may be
    megabytes; only the digest is kept between samples), None for no message."""
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogatepass")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return hashlib.blake2b(message, digest_size=16).digest()
    return message


def _rq_enqueued(client: Any, job_id: bytes) -> float | None:
    from datetime import datetime, timezone

    try:
        raw = client.hget(b"rq:job:" + job_id, "enqueued_at")
        if raw is None:
            return None
        when = datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    except Exception:  # a job that expired between the two reads, an odd format
        return None


_WATCHED: weakref.WeakKeyDictionary[Any, list[BrokerQueues]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def watched(gate: Any) -> list[BrokerQueues]:
    """The brokers watched for ``gate`` (``gate.stats()["job_queues"]``)."""
    return list(_WATCHED.get(gate, ()))


def watch(gate: UnitGate, client: Any, queues: Iterable[str | QueueList],
          layout: Layout = CELERY,
          interval: float = 10.0) -> BrokerQueues:
    """Watch ``queues`` of the Redis broker behind ``client`` (a redis-py client) for
    ``gate``: sampled every ``interval`` seconds on its scheduler, shown in
    ``gate.stats()["job_queues"]``, stalls flagged (see the module doc)."""
    broker = BrokerQueues(client, queues, layout, gate.config.units.queue_stall_seconds)
    with _LOCK:
        brokers = _WATCHED.get(gate)
        first = brokers is None
        if brokers is None:
            brokers = _WATCHED[gate] = []
            gate.plugs.add_stats("job_queues", _QueuesSection(brokers))
        brokers.append(broker)
        index = len(brokers)
    ref = weakref.ref(gate)

    def poll() -> None:
        g = ref()
        if g is not None:
            broker.poll(g)

    gate.scheduler.every(interval, poll, f"pulsegate.jobs.broker.{layout.name}.{index}")
    if first:
        from pulsegate.export.io import install

        install(gate, queues=brokers)  # Prometheus gauges per queue
    return broker


class _QueuesSection:
    """``gate.stats()["job_queues"]``: per watched queue, its last sample."""

    def __init__(self, brokers: list[BrokerQueues]) -> None:
        self.brokers = brokers

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for broker in list(self.brokers):
            out.update(broker.stats())
        return out
