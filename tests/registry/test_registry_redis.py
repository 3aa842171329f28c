"""Several workers sharing state through a real Redis: the fleet baseline."""

import math
import time
import uuid

import pytest
from registry_helpers import make_gate, warm


def test_workers_merge_into_a_fleet_baseline(redis_service) -> None:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    opts = dict(state_redis_url=redis_service.url, state_namespace=ns)
    a, ca = make_gate(**opts)
    b, cb = make_gate(**opts)
    assert a.ops.worker != b.ops.worker
    warm(a, ca, 60, ms=10.0)
    warm(b, cb, 20, ms=40.0)
    a.close()
    b.close()
    fresh, _ = make_gate(**opts)
    model = fresh.baselines.peek("GET /x")
    # Chan merge weighted by each worker's own requests: (60·ln10 + 20·ln40) / 80
    expected = (60 * math.log(10) + 20 * math.log(40)) / 80
    assert math.isclose(model.level[0], expected, rel_tol=1e-6)
    # the merged variance includes the spread between the workers' levels
    between = 60 * 20 / 80 * (math.log(40) - math.log(10)) ** 2 / 80
    assert model.var[0] >= between * 0.99
    assert model.n == 80
    fresh.close()


def test_redis_down_at_start_means_cold_start_not_crash(redis_instance) -> None:
    url = redis_instance.url
    redis_instance.stop()
    gate, clk = make_gate(state_redis_url=url, state_namespace="t-down")
    warm(gate, clk, 35)  # requests are served; the restore failure is counted
    assert gate.baselines.peek("GET /x").n == 35
    assert any("registry" in k for k in gate.faults.by_kind)
    gate.close()  # the final snapshot fails quietly too
    redis_instance.start()
    gate2, clk2 = make_gate(state_redis_url=url, state_namespace="t-down")
    warm(gate2, clk2, 35)
    gate2.close()
    gate3, _ = make_gate(state_redis_url=url, state_namespace="t-down")
    assert gate3.baselines.peek("GET /x").n == 35
    gate3.close()


def test_a_breaker_spares_the_scheduler_while_redis_is_down(redis_instance) -> None:
    gate, clk = make_gate(state_redis_url=redis_instance.url, state_namespace="t-breaker",
                          snapshot_interval=10)
    warm(gate, clk, 35)
    gate.ops.snapshot()
    redis_instance.stop()
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - a connection error of redis-py
            gate.ops.snapshot()
    assert gate.ops.breaker.state == "open"
    t0 = time.perf_counter()
    gate.ops.snapshot()  # skipped at once: no connect timeout paid
    assert time.perf_counter() - t0 < 0.1
    redis_instance.start()
    clk.t += 51  # past the recovery timeout (5 x snapshot_interval)
    warm(gate, clk, 5)
    gate.ops.snapshot()
    assert gate.ops.breaker.state == "closed"
    gate.close()
    # this Redis keeps nothing across its restart: the first snapshot after the outage
    # rewrote everything, the registry included
    again, _ = make_gate(state_redis_url=redis_instance.url, state_namespace="t-breaker")
    assert again.baselines.peek("GET /x").n == 40
    assert again.ops.store.read("models")
    again.close()
