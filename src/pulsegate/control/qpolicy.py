"""Tabular Q-learning over the concurrency limit (the allocator's brain).

State (bucketed, 5 x 3 x 2 x 2 = 60 states), measured over one control window:

* latency ratio ``r = mean in-service latency / target``: <0.5, <0.8, <1.0, <1.5, >=1.5
* utilisation ``u = mean in-flight / limit``: <0.5, <0.9, >=0.9
* demand: 1 when requests queued or were shed in the window, else 0
* pressure: 1 when memory or CPU pressure is above its threshold, else 0

Actions: 0 = decrease (``L <- 0.9 L``), 1 = hold, 2 = increase (``L <- 1.1 L + 1``).

Reward of the window that followed an action::

    R = (good - 2 late - shed_other - 5 shed_high) / (completed + shed)
        - pressure - 0.05 [action != hold]
        - 0.5 max(0, 1 - completed_per_s / throughput_target)     (when a target is set)

``good``: completions within the target and not failed; ``late``: completions over
target; ``shed_*``: requests refused in the window. R is 1 when every offered request
was served in time, 0 at 2x overload served perfectly (half must be shed), and falls
when the limit is too low (more shed than necessary) or too high (late answers, which
cost twice a refusal: a late answer is usually useless *and* slowed others). The small
change cost keeps the limit still when the action makes no difference (light load).
The reward is that of the window *after* the action, so its differences are caused
by the action; the Bellman update (``alpha``, ``gamma``) carries the cost of a queue
that builds up to the action that let it build.

The table starts from a prior (shrink when late or under pressure, grow when there is
demand and latency headroom, hold otherwise) so the first windows are sensible and
exploration (epsilon-greedy, decaying) refines the boundaries -- e.g. whether to hold
or grow at 0.8-1.0 of target -- for this service's noise. A safety shield restricts the
choice: never grow while latency is over target, and always shrink beyond 1.5x target
or under memory/CPU pressure (pressure is not caused by the limit alone, so no window
would ever "reward" shrinking for it; it is a rule, not a lesson). Bucketed states
cannot tell "a bit over" from "far over", so a pure learner can settle on "hold" deep
in overload where every action's next window looks equally bad; the shield removes that
trap, learning keeps the judgement calls.
"""

from __future__ import annotations

import random
from typing import Any

LAT_EDGES = (0.5, 0.8, 1.0, 1.5)
UTIL_EDGES = (0.5, 0.9)
N_LAT, N_UTIL = len(LAT_EDGES) + 1, len(UTIL_EDGES) + 1
N_STATES = N_LAT * N_UTIL * 2 * 2
DECREASE, HOLD, INCREASE = 0, 1, 2
N_ACTIONS = 3
CHANGE_COST = 0.05


def bucket(x: float, edges: tuple[float, ...]) -> int:
    for i, e in enumerate(edges):
        if x < e:
            return i
    return len(edges)


def encode(lat_ratio: float, util: float, demand: bool, pressure: bool) -> int:
    return (((bucket(lat_ratio, LAT_EDGES) * N_UTIL + bucket(util, UTIL_EDGES)) * 2
             + int(demand)) * 2 + int(pressure))


def decode(state: int) -> tuple[int, int, int, int]:
    pressure = state % 2
    state //= 2
    demand = state % 2
    state //= 2
    return state // N_UTIL, state % N_UTIL, demand, pressure


def prior(state: int) -> list[float]:
    """Initial Q-values: the obvious policy, with small margins so learning can move it."""
    lat, util, demand, pressure = decode(state)
    q = [0.0, 0.1, 0.0]  # hold is the default
    if pressure or lat >= 3:
        q = [0.3, 0.0, -0.5]
    elif lat == 2:
        q = [0.05, 0.1, -0.2]
    elif demand and util >= 1:
        q = [-0.2, 0.05, 0.2 if lat <= 1 else 0.08]
    return q


class QPolicy:
    def __init__(self, alpha: float = 0.1, gamma: float = 0.9, epsilon: float = 0.05,
                 epsilon_decay: float = 0.995, epsilon_min: float = 0.0, seed: int | None = 0) -> None:
        self.alpha = alpha
        self.gamma = gamma
        self.epsilon = epsilon
        self.epsilon_decay = epsilon_decay
        self.epsilon_min = epsilon_min
        self.q: list[list[float]] = [prior(s) for s in range(N_STATES)]
        self.rng = random.Random(seed)
        self.steps = 0
        self.explored = 0

    def choose(self, state: int) -> int:
        lat, _, _, pressure = decode(state)
        if lat >= 4 or pressure:  # >= 1.5x target, or the host itself is short: shrink
            return DECREASE
        allowed = (DECREASE, HOLD) if lat >= 3 else (DECREASE, HOLD, INCREASE)
        if self.rng.random() < self.epsilon:
            self.explored += 1
            action = self.rng.choice(allowed)
        else:
            row = self.q[state]
            action = max(allowed, key=lambda a: row[a])
        self.epsilon = max(self.epsilon_min, self.epsilon * self.epsilon_decay)
        return action

    def learn(self, state: int, action: int, reward: float, next_state: int) -> None:
        row = self.q[state]
        row[action] += self.alpha * (reward + self.gamma * max(self.q[next_state]) - row[action])
        self.steps += 1

    def state(self) -> dict[str, Any]:
        return {"q": [list(r) for r in self.q], "epsilon": self.epsilon, "steps": self.steps}

    def load_state(self, data: dict[str, Any]) -> None:
        q = data.get("q")
        if (not isinstance(q, list) or len(q) != N_STATES
                or not all(isinstance(r, list) and len(r) == N_ACTIONS for r in q)):
            raise ValueError("Q-table shape mismatch")
        self.q = [[float(v) for v in r] for r in q]
        self.epsilon = float(data.get("epsilon", self.epsilon))
        self.steps = int(data.get("steps", 0))
