"""Rate limiting on a real three-node Redis Cluster on loopback (no skipping)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.control.storage import RedisStorage
from pulsegate.engine import PulseGate
from pulsegate.flow import run_async
from services import free_port, require, wait_port

pytestmark = pytest.mark.service


def cluster_port(taken: list[int]) -> int:
    """A free port whose cluster-bus twin (port + 10000) fits and is free too."""
    for _ in range(200):
        p = free_port()
        if p <= 55535 and p not in taken:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
            return p
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture()
def cluster() -> Iterator[list[int]]:
    server, cli = require("redis-server", "redis-server"), require("redis-cli", "redis-tools")
    ports: list[int] = []
    for _ in range(3):
        ports.append(cluster_port(ports))
    tmp = tempfile.mkdtemp(prefix="pulsegate-cluster-")
    procs = [subprocess.Popen(
        [server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"{tmp}/nodes-{p}.conf", "--save", "", "--appendonly", "no",
         "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            wait_port(p)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        node = redis.Redis(port=ports[0])
        deadline = time.monotonic() + 30
        while node.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
            assert time.monotonic() < deadline, "the cluster never became ready"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


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
