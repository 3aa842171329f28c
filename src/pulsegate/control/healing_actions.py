"""The healing actions a configuration names, checked: what each one does and which
incidents trigger it (:mod:`pulsegate.control.healing` carries them out).

A leaf: the configuration's check imports it, so it imports nothing of pulsegate's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIONS", "MAX_ACTIONS", "METRICS", "SHED_FROM", "HealingAction", "parse_action"]

ACTIONS = ("shed", "degrade", "tighten", "callback")
METRICS = ("latency", "latency drift", "latency tail", "error rate")
#: priority class name -> the lowest priority number shed (allocator.PRIORITIES: 0 high)
SHED_FROM = {"low": 2, "normal": 1}
MAX_ACTIONS = 32


@dataclass(frozen=True)
class HealingAction:
    """One configured action and its trigger (see the module docstring)."""

    do: str
    on: str = "*"
    metric: str | None = None
    min_score: float = 0.5
    priority: str = "low"
    endpoint: str | None = None
    factor: float = 0.5
    call: Callable[[Any, bool], Any] | None = None

    def matches(self, incident: Any) -> bool:
        """Whether an :class:`~pulsegate.incidents.Incident` triggers this action."""
        if incident.score < self.min_score:
            return False
        if self.metric is not None and incident.metric != self.metric:
            return False
        on, endpoint = self.on, str(incident.endpoint)
        if on.endswith("*"):
            return endpoint.startswith(on[:-1])
        return endpoint == on

    def describe(self, endpoint: str) -> str:
        if self.do == "shed":
            return f"shed {self.priority}-priority requests"
        if self.do == "degrade":
            return f"degrade {endpoint}"
        if self.do == "tighten":
            return f"tighten the rate limit of {endpoint} to {self.factor:g}x"
        return f"call {getattr(self.call, '__qualname__', 'the callback')}"


def parse_action(key: str, value: Any) -> HealingAction:
    """One entry of ``healing_actions`` -> a :class:`HealingAction`, or ``ValueError``
    saying what is allowed (the config check turns it into a ``ConfigError``)."""
    if isinstance(value, HealingAction):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: a mapping like {{'do': 'shed', 'priority': 'low'}}")
    known = {"do", "on", "metric", "min_score", "priority", "endpoint", "factor", "call"}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValueError(f"{key}: keys among {sorted(known)}, not {unknown}")
    do = value.get("do")
    if do not in ACTIONS:
        raise ValueError(f"{key}['do']: one of {', '.join(ACTIONS)}")
    on = value.get("on", "*")
    if not isinstance(on, str) or not on or len(on) > 512:
        raise ValueError(f"{key}['on']: an endpoint like 'GET /search' or a prefix ending in *")
    metric = value.get("metric")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"{key}['metric']: one of {', '.join(METRICS)}, or absent")
    min_score = value.get("min_score", 0.5)
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) \
            or not 0.0 <= min_score <= 1.0:
        raise ValueError(f"{key}['min_score']: a number from 0 to 1")
    priority = value.get("priority", "low")
    if priority not in SHED_FROM:
        raise ValueError(f"{key}['priority']: low or normal (high is never shed)")
    endpoint = value.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or " " not in endpoint):
        raise ValueError(f"{key}['endpoint']: an endpoint like 'GET /search', or absent "
                         "(the incident's own endpoint)")
    factor = value.get("factor", 0.5)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
            or not 0.0 < factor < 1.0:
        raise ValueError(f"{key}['factor']: a number between 0 and 1 (exclusive)")
    call = value.get("call")
    if (do == "callback") != (call is not None) or (call is not None and not callable(call)):
        raise ValueError(f"{key}['call']: a callable fn(incident, active), given with "
                         "'do': 'callback' and only then")
    return HealingAction(str(do), on, metric, float(min_score), str(priority), endpoint,
                         float(factor), call)
