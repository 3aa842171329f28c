"""Admission control: a learned concurrency limit with a bounded priority queue.

Requests hold a :class:`Ticket` while in flight. The limit ``L`` is moved once per
control window by :class:`~pulsegate.control.qpolicy.QPolicy` (tabular Q-learning).

Priority classes ``high`` > ``normal`` > ``low``. A class may fill only its share of
``L`` (high 100 %, normal 90 %, low 75 %; 80 % and 50 % once the last window's latency
reached 0.8 x target, so low priority gives way first; the reserve rounded down, see
:mod:`~pulsegate.control.allocator_shares`): the head-room above a lower class's share
is kept for the classes above it, so a burst of high-priority work finds a slot without
waiting for low-priority work to finish. When no slot is free a request waits in a
bounded queue, best class first (FIFO within a class), for at most ``max_queue_wait``
seconds; then it is shed. A full queue sheds its newest lowest-priority waiter to make
room for a higher-priority arrival, and otherwise the arrival itself -- so a high
request is never shed while a lower one is waiting, and lower classes are never
admitted while a higher one waits. After a high request is shed, no low one is admitted
for one control ``interval``: the server is short of room for high work.

``acquire_or_enqueue`` is the clock-driven core (the simulation drives it with
``expire(now)``); ``acquire_flow`` waits for a queued ticket as a
:mod:`~pulsegate.flow` (one code path for threads and asyncio); ``acquire`` is
its blocking form.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pulsegate.control.allocator_park import Park
from pulsegate.control.allocator_shares import class_caps
from pulsegate.control.autotarget import LatencyBaseline
from pulsegate.control.qpolicy import CHANGE_COST, DECREASE, HOLD, INCREASE, QPolicy, encode
from pulsegate.flow import Flow, run

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
NAMES = ("high", "normal", "low")


class Ticket:
    __slots__ = ("allocator", "inflight", "priority", "released", "start", "waited")

    def __init__(self, allocator: ConcurrencyAllocator, priority: int, start: float,
                 waited: float, inflight: int = 1) -> None:
        self.allocator, self.priority, self.start, self.waited = allocator, priority, start, waited
        #: requests in flight when this one was admitted (itself included)
        self.inflight = inflight
        self.released = False

    def release(self, latency_s: float | None = None, ok: bool = True) -> None:
        """Give the slot back; ``latency_s`` (default: time since admission) and ``ok``
        (False for a failed request) feed the learner. Idempotent."""
        if not self.released:
            self.released = True
            self.allocator._release(self, latency_s, ok)


class Waiter:
    __slots__ = ("deadline", "notify", "priority", "shed", "since", "ticket")

    def __init__(self, priority: int, since: float, deadline: float,
                 notify: Callable[[], None] | None) -> None:
        self.priority = priority
        self.since = since
        self.deadline = deadline
        self.notify = notify
        self.ticket: Ticket | None = None
        self.shed = False


class ConcurrencyAllocator:
    def __init__(self, min_limit: int = 4, max_limit: int = 256, initial: int | None = None, *,
                 target_latency: float = 0.2, max_queue: int = 100, max_queue_wait: float = 0.05,
                 interval: float | None = None, min_samples: int = 10,
                 clock: Callable[[], float] = time.monotonic,
                 pressure: Callable[[], float] | None = None, policy: QPolicy | None = None,
                 learn: bool = True, throughput_target: float | None = None,
                 auto_target: bool = False) -> None:
        self.min_limit = min_limit
        self.max_limit = max_limit
        self._limit = float(initial if initial is not None else max(min_limit, min(max_limit, 20)))
        #: the latency the learner steers to; with ``auto_target`` it moves below the
        #: configured ``target_cap`` (:mod:`~pulsegate.control.autotarget`)
        self.target = target_latency
        self.target_cap = target_latency
        self.auto_target = auto_target
        self.latency_baseline = LatencyBaseline(target_latency)
        self.max_queue = max_queue
        self.max_queue_wait = max_queue_wait
        self._fixed_interval = interval is not None
        self.interval = interval if interval is not None else min(1.0, max(0.05, 3 * target_latency))
        self.min_samples = min_samples
        self.clock = clock
        #: 0..1 resource pressure (memory/CPU), sampled off the request path.
        self.pressure = pressure or (lambda: 0.0)
        self.policy = policy or QPolicy()
        self.learn = learn
        #: requests/s to sustain; when set, windows completing fewer cost reward
        self.throughput_target = throughput_target
        self.inflight = 0
        self.queues: tuple[deque[Waiter], ...] = (deque(), deque(), deque())
        self.queued = 0
        self.admitted = [0, 0, 0]
        self.shed = [0, 0, 0]
        self.history: deque[tuple[float, int]] = deque(maxlen=512)
        self._lock = threading.Lock()
        self._hot = False
        self._caps = self._compute_caps()
        self._low_after = -float("inf")  # low admitted again from then on (see _cap)
        self._w_start = self._w_last = clock()
        self._w_area = 0.0
        self._w_n = self._w_good = self._w_late = self._w_lat = self._w_seen = 0.0
        self._w_high_shed = self._w_shed = 0
        self._prev: tuple[int, int] | None = None
        self.last_window: dict[str, Any] = {}

    # --- admission -------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return int(self._limit)

    def _compute_caps(self) -> tuple[int, int, int]:
        return class_caps(int(self._limit), self._hot)

    def _area(self, now: float) -> None:
        self._w_area += self.inflight * (now - self._w_last)
        self._w_last = now

    def _grant(self, priority: int, now: float, waited: float) -> Ticket:
        self._area(now)
        self.inflight += 1
        self.admitted[priority] += 1
        return Ticket(self, priority, now, waited, self.inflight)

    def try_acquire(self, priority: int) -> Ticket | None:
        """A ticket if a slot is free for this class and nobody better is waiting; never
        queues. The common, uncontended path of ``acquire``: no Event, no Future."""
        with self._lock:
            now = self.clock()
            if self.inflight < self._cap(priority, now) and not self.queued:
                return self._grant(priority, now, 0.0)
        return None

    def acquire_or_enqueue(self, priority: str | int = "normal",
                           notify: Callable[[], None] | None = None) -> Ticket | Waiter | None:
        """A ticket now, a :class:`Waiter` queued (``notify()`` is called when it gets a
        ticket or is shed), or None: shed at once."""
        p = priority if isinstance(priority, int) else PRIORITIES.get(priority, 1)
        with self._lock:
            now = self.clock()
            if self.inflight < self._cap(p, now) and not any(self.queues[i] for i in range(p + 1)):
                return self._grant(p, now, 0.0)
            if self.max_queue_wait <= 0 or self.max_queue <= 0:
                self._count_shed(p)
                return None
            if self.queued >= self.max_queue:
                victim_class = next((i for i in (2, 1) if i > p and self.queues[i]), None)
                if victim_class is None:
                    self._count_shed(p)
                    return None
                victim = self.queues[victim_class].pop()  # the newest of the lowest class
                self.queued -= 1
                self._shed_waiter(victim)
            w = Waiter(p, now, now + self.max_queue_wait, notify)
            self.queues[p].append(w)
            self.queued += 1
            return w

    def _cap(self, p: int, now: float) -> int:
        """Class ``p``'s cap; low priority gets none for one interval after a high shed."""
        return 0 if p == 2 and now < self._low_after else self._caps[p]

    def _count_shed(self, p: int) -> None:
        self.shed[p] += 1
        self._w_shed += 1
        if p == 0:
            self._w_high_shed += 1
            self._low_after = self.clock() + self.interval

    def _shed_waiter(self, w: Waiter) -> None:
        w.shed = True
        self._count_shed(w.priority)
        if w.notify is not None:
            w.notify()

    def _dispatch(self, now: float) -> None:
        """Hand free slots to the best waiters (called with the lock held)."""
        for p in (0, 1, 2):
            q = self.queues[p]
            while q and self.inflight < self._cap(p, now):
                w = q.popleft()
                self.queued -= 1
                w.ticket = self._grant(p, now, now - w.since)
                if w.notify is not None:
                    w.notify()
            if q:
                return  # a waiting better class blocks the lower ones

    def expire(self, now: float | None = None) -> int:
        """Shed the waiters whose deadline has passed; returns how many."""
        n = 0
        with self._lock:
            now = self.clock() if now is None else now
            for q in self.queues:
                while q and q[0].deadline <= now:
                    self._shed_waiter(q.popleft())
                    self.queued -= 1
                    n += 1
        return n

    def finish_wait(self, w: Waiter) -> Ticket | None:
        """The waiter gave up (timeout or cancel): its ticket if granted meanwhile, else
        None after removing it from the queue and counting it shed."""
        with self._lock:
            if w.ticket is not None or w.shed:
                return w.ticket
            try:
                self.queues[w.priority].remove(w)
                self.queued -= 1
            except ValueError:
                pass
            w.shed = True
            self._count_shed(w.priority)
            return None

    def notify_when_resolved(self, w: Waiter, notify: Callable[[], None]) -> bool:
        """Have ``notify()`` called when ``w`` gets a ticket or is shed; False (and no
        call) if that already happened -- nothing to wait for."""
        with self._lock:
            if w.ticket is not None or w.shed:
                return False
            w.notify = notify
            return True

    def acquire_flow(self, priority: str | int = "normal", timeout: float | None = None
                     ) -> Flow[Ticket | None]:
        """A ticket, or None when shed, as a :mod:`~pulsegate.flow`: waiting in
        the queue (at most ``timeout``, default ``max_queue_wait``) is its one step,
        :class:`Park`. If that wait is interrupted (a cancelled task), a ticket granted
        meanwhile is given back before the interruption propagates."""
        r = self.acquire_or_enqueue(priority)
        if not isinstance(r, Waiter):
            return r
        try:
            yield Park(self, r, self.max_queue_wait if timeout is None else timeout)
        except BaseException:
            t = self.finish_wait(r)
            if t is not None:
                t.release(ok=False)
            raise
        return self.finish_wait(r)

    def acquire(self, priority: str | int = "normal", timeout: float | None = None) -> Ticket | None:
        """Blocking form of :meth:`acquire_flow` (threads/WSGI): a ticket, or None when shed."""
        if isinstance(priority, int):
            t = self.try_acquire(priority)
            if t is not None:
                return t
        return run(self.acquire_flow(priority, timeout))

    def set_limit(self, limit: float) -> None:
        """Set the limit from outside (an operator override, or another controller in
        the simulation benchmark); clamped to the bounds, waiters dispatched."""
        with self._lock:
            self._limit = float(min(self.max_limit, max(self.min_limit, limit)))
            self._caps = self._compute_caps()
            self._dispatch(self.clock())

    # --- learning --------------------------------------------------------------------

    def _release(self, ticket: Ticket, latency_s: float | None, ok: bool) -> None:
        with self._lock:
            now = self.clock()
            self._area(now)
            self.inflight -= 1
            lat = now - ticket.start if latency_s is None else latency_s
            self._w_n += 1
            self._w_lat += lat
            self._w_seen += ticket.inflight
            if lat > self.target:
                self._w_late += 1
            elif ok:
                self._w_good += 1
            if self.learn and now - self._w_start >= self.interval and self._w_n >= self.min_samples:
                self._step(now)
            self._dispatch(now)

    def _step(self, now: float) -> None:
        span = max(now - self._w_start, 1e-9)
        n = self._w_n
        lat_ratio = (self._w_lat / n) / self.target
        util = self._w_area / span / max(self._limit, 1.0)
        demand = self.queued > 0 or self._w_shed > 0
        try:
            pressure = self.pressure() >= 1.0
        except Exception:
            pressure = False
        state = encode(lat_ratio, util, demand, pressure)
        offered = n + self._w_shed
        reward = ((self._w_good - 2.0 * self._w_late - (self._w_shed - self._w_high_shed)
                   - 5.0 * self._w_high_shed) / max(1.0, offered)
                  - (1.0 if pressure else 0.0))
        if self.throughput_target:
            # Short of the operator's throughput target: a penalty up to 0.5 that only
            # more admitted work can remove (the latency terms still cap it).
            reward -= 0.5 * max(0.0, 1.0 - (n / span) / self.throughput_target)
        pol = self.policy
        if self._prev is not None:
            if self._prev[1] != HOLD:
                reward -= CHANGE_COST
            pol.learn(self._prev[0], self._prev[1], reward, state)
        action = pol.choose(state)
        lim = self._limit
        if action == DECREASE:
            lim = lim * 0.9
        elif action == INCREASE:
            lim = lim * 1.1 + 1.0
        self._limit = float(min(self.max_limit, max(self.min_limit, lim)))
        if self.auto_target:
            self.latency_baseline.window(self._w_lat / n, lat_ratio, self._w_seen / n, util,
                                         demand)
            self._retarget()
        self._hot = lat_ratio >= 0.8
        self._caps = self._compute_caps()
        self._prev = (state, action)
        self.history.append((now, self.limit))
        self.last_window = {"latency_ratio": lat_ratio, "utilisation": util, "demand": demand,
                            "pressure": pressure, "reward": reward, "action": action,
                            "samples": n}
        self._w_start = self._w_last = now
        self._w_area = 0.0
        self._w_n = self._w_good = self._w_late = self._w_lat = self._w_seen = 0.0
        self._w_high_shed = self._w_shed = 0

    @property
    def baseline(self) -> float | None:
        """In-service latency without queueing, learnt from unqueued windows (auto target)."""
        return self.latency_baseline.baseline

    def _retarget(self) -> None:
        self.target = self.latency_baseline.target()
        if not self._fixed_interval:
            self.interval = min(1.0, max(0.05, 3 * self.target))

    # --- persistence and reporting ------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"version": 1, "limit": self._limit, "policy": self.policy.state(),
                "baseline": self.baseline}

    def load_state(self, data: dict[str, Any]) -> None:
        if data.get("version") != 1:
            raise ValueError("unknown allocator state version")
        self.policy.load_state(data["policy"])
        with self._lock:
            self._limit = float(min(self.max_limit, max(self.min_limit, float(data["limit"]))))
            if self.auto_target:  # "baseline" is absent in states saved before it
                self.latency_baseline.restore(data.get("baseline"))
                self.target = self.latency_baseline.target()
            self._caps = self._compute_caps()

    def stats(self) -> dict[str, Any]:
        return {"limit": self.limit, "inflight": self.inflight, "queued": self.queued,
                "admitted": dict(zip(NAMES, self.admitted, strict=True)),
                "shed": dict(zip(NAMES, self.shed, strict=True)),
                "q_steps": self.policy.steps, "epsilon": self.policy.epsilon}
