"""Per-client memory does not grow with request size (issue 18, hole 7): a profile
keeps digests, never a request's path, query string or User-Agent. Before, 20 000
clients sending 2 KiB fields held about 11 KiB each (``benchmarks/memory.py
--clients``)."""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import tracemalloc

from pulsegate.control.behaviour import BehaviourModel, digest
from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.records import RequestRecord


def held_per_client(size: int, clients: int = 300) -> float:
    limiter = AdaptiveRateLimiter("100/minute", max_clients=2 * clients)
    rng = random.Random(size)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = 0.0
    for c in range(clients):
        key = f"ip:10.0.{c >> 8}.{c & 255}"
        for _ in range(3):
            t += 0.01
            fill = f"{rng.getrandbits(64):016x}" * (size // 16 + 1)
            limiter.check(key)
            record = RequestRecord("GET", "/p/{x}", "/p/" + fill[:size], 200, t, 1.0, 1.0,
                                   None, None)
            limiter.observe(key, record, "UA/" + fill[1:size], "q=" + fill[2:size], now=t)
    del fill, record  # the last request's strings are not the client's
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return held / clients


def held_per_client_in_a_fresh_process(size: int) -> float:
    """``held_per_client`` in its own interpreter: tracemalloc counts every thread's
    allocations, so inside a long run another test's leftover threads (a scheduler, a
    server) were counted as the clients' (1 101.7 bytes once, 1 015 alone)."""
    out = subprocess.run([sys.executable, __file__, str(size)], capture_output=True,
                         text=True, check=True, timeout=120)
    return float(out.stdout)


def test_bytes_per_client_are_flat_and_about_a_kibibyte() -> None:
    small = held_per_client_in_a_fresh_process(16)
    large = held_per_client_in_a_fresh_process(16_384)
    assert abs(large - small) < 64, (small, large)
    # 993 bytes with issue 23's abrupt-change detector (six doubles in one array) and
    # the query table and path ring in one array of digests; 1 015 with the failure
    # streak and burst history (three more doubles) and a 48-path ring of 16-bit digests;
    # 1 007 with the rate CUSUM (two doubles more, the write share moved into the array),
    # 1 015 with the ramp flag; 1 015 with the fast rate test (three doubles more, the
    # last request's time moved into the array from a float object)
    assert large <= 1024, large


def test_digests_keep_the_features() -> None:
    m = BehaviourModel(nominal_rate=1.0)
    t = 0.0
    for i in range(60):  # a scraper: new path every time, rotating UA and query
        t += 1.0
        p = m.update("ip:a", t, "GET", "/item/{id}", f"/item/{i}", 200, f"bot/{i}", f"k={i}")
    assert p.div > 0.9 and p.ua > 0.9 and p.param > 0.9
    for i in range(60):  # a person: a few pages, one browser, same query per page
        t += 1.0
        p = m.update("ip:b", t, "GET", f"/page/{i % 3}", f"/page/{i % 3}", 200, "Firefox",
                     "lang=en")
    assert p.div < 0.1 and p.ua < 0.01 and p.param < 0.01
    # None and "" are different User-Agents; equal strings, equal digests
    assert digest(None) == 0 and digest("") != 0 and digest("x" * 10) == digest("x" * 10)


if __name__ == "__main__":
    print(held_per_client(int(sys.argv[1])))
