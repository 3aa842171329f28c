"""Healing hooks: configured actions a critical incident switches on for a while.

An incident (:mod:`pulsegate.incidents`) says an endpoint changed. When one matches an
action's trigger, the :class:`Healer` (a scheduler job, never the request path) turns
the action on for ``healing_seconds``; a later matching incident re-arms it, and it is
turned off -- reverted -- when its time runs out or by :meth:`Healer.revert`. Every
switch is logged (``pulsegate.healing``), kept in :attr:`Healer.history`, shown in
``gate.stats()["healing"]`` and passed to each switch listener of the gate's plugs
(``plugs.add_switch_listener``: the detection stream's, :mod:`pulsegate.export.stream`).

The actions (``healing_actions``, a list of mappings; docs/control.md):

* ``{"do": "shed", "priority": "low"}`` -- requests of that priority class (``low``,
  or ``normal``, which sheds ``low`` too) are answered 503 with
  ``x-ml-optimization-applied: shed`` before the app runs;
* ``{"do": "degrade"}`` -- requests of the incident's endpoint (or of ``"endpoint"``)
  carry ``x-ml-optimization-applied: degrade``, and :func:`degraded` is true inside
  them, so the app can serve its cheaper variant;
* ``{"do": "tighten", "factor": 0.5}`` -- the rate limit of the incident's endpoint (or
  of ``"endpoint"``) is multiplied by ``factor``: each of its requests costs
  ``1 / factor`` tokens of the client's bucket (needs ``rate_limiting``);
* ``{"do": "callback", "call": fn}`` -- ``fn(incident, active)`` is called with the
  :class:`~pulsegate.incidents.Incident` and ``True`` when the action turns on, ``False``
  when it is reverted (from the scheduler thread; an exception is counted, never raised).

Triggers, on any action: ``"on"`` -- the incident's endpoint (``"GET /search"``, or a
prefix ending in ``*``; default every endpoint), ``"metric"`` (``latency``, ``latency
drift``, ``latency tail`` or ``error rate``; default any), ``"min_score"`` (the incident's score, 0.5 at
its detector's alarm line; default 0.5, i.e. every incident).

At most ``healing_max_per_hour`` actions are switched on in any hour (re-arming an
action already on does not count): a flapping endpoint cannot keep shedding traffic.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulsegate.context import current
from pulsegate.control.healing_actions import SHED_FROM, HealingAction
from pulsegate.incidents import Incident

if TYPE_CHECKING:
    from pulsegate.plugins import Host

__all__ = ["Healer", "degraded"]

log = logging.getLogger("pulsegate.healing")
MAX_HISTORY = 100

def degraded() -> bool:
    """True inside a request a ``degrade`` action applies to (the app's cue to serve
    its cheaper variant); False elsewhere, outside requests included."""
    ctx = current()
    return ctx is not None and ctx.optimization == "degrade"


@dataclass
class _Active:
    action: int
    endpoint: str
    until: float
    incident: Incident


class Healer:
    """Switches the configured actions on and off, and answers the controller's two
    per-request questions through three read-only views rebuilt on each switch:
    ``shed_from`` (shed priorities >= it; 3: none), ``degraded`` (endpoints) and
    ``tightened`` (endpoint -> factor). ``engaged`` is false while nothing is on,
    so the request path pays one attribute read."""

    def __init__(self, gate: Host, actions: tuple[HealingAction, ...], seconds: float,
                 max_per_hour: int) -> None:
        self.gate = gate
        self.actions = actions
        self.seconds = seconds
        self.max_per_hour = max_per_hour
        self.clock = gate.clock
        self.engaged = False
        self.shed_from = 3
        self.degraded: frozenset[str] = frozenset()
        self.tightened: dict[str, float] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
        self._active: dict[tuple[int, str], _Active] = {}
        self._switched_on: deque[float] = deque(maxlen=max(1, max_per_hour))
        self._seen = gate.counters["incidents"]
        self._lock = threading.Lock()
        self.refused = 0
        gate.scheduler.every(1.0, self.poll, name="control.healing")
        gate.plugs.add_stats("healing", self)
        gate.plugs.add_report("healing", self.report)
        gate.plugs.add_state("healing", self)

    # --- background -------------------------------------------------------------------

    def poll(self) -> None:
        """Scheduler job (1 s): act on the incidents flagged since the last poll, then
        revert the actions whose time ran out."""
        total = self.gate.counters["incidents"]
        fresh = total - self._seen
        self._seen = total
        if fresh > 0:
            stored = list(self.gate.incidents)[-fresh:]
            for d in stored:
                if isinstance(d, dict):
                    self.incident(Incident.from_dict(d))
        self.expire()

    def incident(self, incident: Incident) -> None:
        """Switch on (or re-arm) every action this incident triggers."""
        now = self.clock()
        for i, action in enumerate(self.actions):
            if not action.matches(incident):
                continue
            endpoint = action.endpoint or incident.endpoint
            key = (i, "" if action.do == "shed" else endpoint)
            with self._lock:
                active = self._active.get(key)
                if active is not None:  # already on: keep it on for longer
                    active.until = now + self.seconds
                    active.incident = incident
                    continue
                if not self._may_switch_on(now):
                    self.refused += 1
                    log.warning("pulsegate healing: not %s after the incident on %s: "
                                "%d actions in the last hour already (healing_max_per_hour)",
                                action.describe(endpoint), incident.endpoint,
                                self.max_per_hour)
                    continue
                self._active[key] = _Active(i, endpoint, now + self.seconds, incident)
                self._rebuild()
            self._note("on", action, endpoint, incident)

    def expire(self) -> None:
        now = self.clock()
        with self._lock:
            done = [k for k, a in self._active.items() if a.until <= now]
        for key in done:
            self._switch_off(key)

    def revert(self) -> int:
        """Turn every action off now; returns how many were on."""
        with self._lock:
            keys = list(self._active)
        for key in keys:
            self._switch_off(key)
        return len(keys)

    def _switch_off(self, key: tuple[int, str]) -> None:
        with self._lock:
            active = self._active.pop(key, None)
            if active is None:
                return
            self._rebuild()
        self._note("off", self.actions[active.action], active.endpoint, active.incident)

    def _may_switch_on(self, now: float) -> bool:
        recent = self._switched_on
        while recent and recent[0] <= now - 3600.0:
            recent.popleft()
        if len(recent) >= self.max_per_hour:
            return False
        recent.append(now)
        return True

    def _rebuild(self) -> None:
        """The request path's views, replaced whole (readers never see a half-built
        one)."""
        shed_from = 3
        degraded: set[str] = set()
        tightened: dict[str, float] = {}
        for active in self._active.values():
            action = self.actions[active.action]
            if action.do == "shed":
                shed_from = min(shed_from, SHED_FROM[action.priority])
            elif action.do == "degrade":
                degraded.add(active.endpoint)
            elif action.do == "tighten":
                tightened[active.endpoint] = min(action.factor,
                                                 tightened.get(active.endpoint, 1.0))
        self.shed_from = shed_from
        self.degraded = frozenset(degraded)
        self.tightened = tightened
        self.engaged = bool(self._active)

    def _note(self, state: str, action: HealingAction, endpoint: str,
              incident: Incident) -> None:
        what = action.describe(endpoint)
        row = {"at": self.gate.wall(), "state": state, "action": action.do, "what": what,
               "endpoint": endpoint, "incident": incident.endpoint, "score": incident.score}
        self.history.append(row)
        for listener in list(self.gate.plugs.switch_listeners):
            try:
                listener(row, incident)
            except Exception as exc:
                self.gate.faults.record("healing.listener", exc)
        if state == "on":
            log.warning("pulsegate healing: %s for %.0f s, after an incident on %s "
                        "(%s %.1fx, score %.2f)", what, self.seconds, incident.endpoint,
                        incident.metric, incident.ratio, incident.score)
        else:
            log.info("pulsegate healing: reverted: %s", what)
        if action.call is not None:
            try:
                action.call(incident, state == "on")
            except Exception as exc:  # a user's callback never stops the scheduler
                self.gate.faults.record("healing.callback", exc)

    def stats(self) -> dict[str, Any]:
        return {"active": self.active(), "switched": len(self.history),
                "refused": self.refused, "history": list(self.history)[-10:]}

    def active(self) -> list[dict[str, Any]]:
        """The actions on now, with the incident that armed each and the seconds left."""
        now = self.clock()
        with self._lock:
            return [{"action": self.actions[a.action].do,
                     "what": self.actions[a.action].describe(a.endpoint),
                     "incident": a.incident.endpoint,
                     "seconds_left": round(max(0.0, a.until - now), 1)}
                    for a in self._active.values()]

    def report(self) -> dict[str, Any]:
        """The dashboard's section: what is on, and the switches, newest first."""
        return {"active": self.active(), "history": list(reversed(self.history)),
                "refused": self.refused}

    # --- persistence (the registry's snapshots): the switches, not the actions ----------

    def state(self) -> dict[str, Any]:
        """What ``pulsegate report`` shows after the process is gone. Actions on now are
        not kept: a restarted process starts with none on, and the next incident
        switches them on again."""
        return {"history": list(self.history)}

    def load_state(self, data: Any) -> None:
        rows = data.get("history") if isinstance(data, dict) else None
        if isinstance(rows, list):
            since_start = list(self.history)  # switched before the state was read
            self.history.clear()
            self.history.extend([r for r in rows if isinstance(r, dict)] + since_start)
