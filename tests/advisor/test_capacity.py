"""Capacity advice: the queueing model against exact M/M/c figures and a simulated
M/G/c server."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from pulsegate.advisor.capacity import (
    advise,
    erlang_c,
    from_log_moments,
    response_tail,
    service_mixture,
    workers_needed,
)


def test_erlang_c_matches_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-3)
    assert erlang_c(500, 400.0) < 1e-6  # no overflow at large c


def test_mm1_response_tail_is_exact() -> None:
    # M/M/1: R ~ Exp(mu - lambda), P(R > T) = exp(-(mu - lambda) T)
    mu, lam, t = 100.0, 60.0, 0.05
    got = response_tail(1, lam, 1 / mu, 1.0, t, points=2000)
    # the service is modelled log-normal with cv2 = 1 rather than exponential: close
    assert got == pytest.approx(math.exp(-(mu - lam) * t), abs=0.03)


def simulate(workers: int, lam: float, mean: float, sigma: float, n: int, seed: int) -> float:
    """Share of requests over the target in a FIFO M/G/c with log-normal service."""
    rng = random.Random(seed)
    free = [0.0] * workers
    heapq.heapify(free)
    t = 0.0
    late = 0
    mu = math.log(mean) - sigma * sigma / 2
    for _ in range(n):
        t += rng.expovariate(lam)
        start = max(t, heapq.heappop(free))
        done = start + rng.lognormvariate(mu, sigma)
        heapq.heappush(free, done)
        late += done - t > 0.05
    return late / n


@pytest.mark.parametrize("lam", [400.0, 1200.0, 2400.0])
def test_workers_needed_is_within_one_of_the_simulated_optimum(lam: float) -> None:
    mean, sigma = 0.010, 0.5
    cv2 = math.exp(sigma * sigma) - 1
    advised = workers_needed(lam, mean, cv2, 0.05, 0.99)
    assert advised is not None
    c = max(1, int(lam * mean) + 1, advised - 3)
    while simulate(c, lam, mean, sigma, 30_000, seed=3) > 0.01:
        c += 1
    assert abs(advised - c) <= 1, (advised, c)


def test_unreachable_target_says_so() -> None:
    advice = advise(100.0, 0.2, 0.5, target_s=0.1, quantile=0.99)
    assert advice.workers is None and "by themselves" in advice.note


def test_replicas_from_the_allocator_limit() -> None:
    advice = advise(2000.0, 0.010, 0.3, 0.05, 0.99, limit_per_replica=8.0)
    assert advice.workers is not None and advice.replicas == math.ceil(advice.workers / 8)
    assert advice.utilisation is not None and advice.utilisation < 1


def test_log_moments_read_as_gamma_recover_an_exponential() -> None:
    rng = random.Random(5)
    logs = [math.log(rng.expovariate(1 / 10.0)) for _ in range(50_000)]
    level = sum(logs) / len(logs)
    var = sum((x - level) ** 2 for x in logs) / len(logs)
    mean, cv2 = from_log_moments(level, var, "gamma")
    assert mean == pytest.approx(10.0, rel=0.03) and cv2 == pytest.approx(1.0, rel=0.05)
    # read as a log-normal the same logs claim a tail four times as wide
    assert from_log_moments(level, var, "lognormal")[1] > 3.5
    mean_s, cv2_s = service_mixture([(1.0, level, var)])
    assert workers_needed(400.0, mean_s, cv2_s, 0.05, 0.99) is not None
