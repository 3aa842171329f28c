"""Rate limiting on a real three-node Redis Cluster on loopback (no skipping)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.control.storage import RedisStorage
from pulsegate.engine import PulseGate
from pulsegate.flow import run_async
from services import redis_cluster

pytestmark = pytest.mark.service


@pytest.fixture()
def cluster() -> Iterator[list[int]]:
    with redis_cluster() as ports:
        yield ports


def test_buckets_on_a_cluster_with_one_slot_per_client(cluster: list[int]) -> None:
    st = RedisStorage(f"redis+cluster://127.0.0.1:{cluster[0]}", prefix="c:")
    rl = AdaptiveRateLimiter("3/minute", routes={"/login": "1/minute"}, storage=st)
    clients = [f"ip:10.0.0.{i}" for i in range(20)]
    slots = {key_slot(st.key(c, "").encode()) for c in clients}
    assert len(slots) > 1  # clients spread over the nodes...
    for c in clients:  # ...and each client's keys share one slot
        assert key_slot(st.key(c, "").encode()) == key_slot(st.key(c, "/login").encode())
        assert [rl.check(c).allowed for _ in range(4)] == [True, True, True, False]
        assert rl.check(c, route="/login").allowed and not rl.check(c, route="/login").allowed
    assert st.fallbacks == 0 and st.remote_calls == 20 * 6


async def test_async_checks_on_a_cluster(cluster: list[int]) -> None:
    gate = PulseGate(rate_limiting=True, rate_limit="2/minute",
                     rate_limit_storage=f"redis+cluster://127.0.0.1:{cluster[1]}")
    limiter, st = gate.control.limiter, gate.control.storage
    got = [(await run_async(limiter.check_flow(f"k{i % 5}"))).allowed for i in range(15)]
    assert got == [True] * 10 + [False] * 5
    assert st.fallbacks == 0
