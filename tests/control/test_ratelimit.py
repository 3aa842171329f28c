from __future__ import annotations

import time

import pytest

from fakeclock import FakeClock
from pulsegate.control.ratelimit import AdaptiveRateLimiter, parse_rate
from pulsegate.control.storage import MemoryStorage
from pulsegate.records import RequestRecord


@pytest.mark.parametrize(("spec", "expected"), [
    ("100/minute", (100, 60)), ("10/second", (10, 1)), ("5 per 10 seconds", (5, 10)),
    ("1000/h", (1000, 3600)), ("2/day", (2, 86400)), ("7/5min", (7, 300)),
])
def test_parse_rate(spec: str, expected: tuple[float, float]) -> None:
    assert parse_rate(spec) == expected


@pytest.mark.parametrize("spec", ["", "100", "0/minute", "10/fortnight", "x/second"])
def test_parse_rate_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="100/minute"):
        parse_rate(spec)


def test_token_bucket_burst_refill_and_headers() -> None:
    clk = FakeClock()
    rl = AdaptiveRateLimiter("10/second", 5, clock=clk)
    got = [rl.check("a") for _ in range(6)]
    assert [d.allowed for d in got] == [True] * 5 + [False]
    assert [d.remaining for d in got[:5]] == [4, 3, 2, 1, 0]
    refused = got[5]
    assert refused.retry_after == pytest.approx(0.1)
    h = dict(refused.headers())
    assert h["retry-after"] == "1" and h["ratelimit-policy"] == '"default";q=10;w=1'
    assert "retry-after" not in dict(got[0].headers())
    clk.t += 0.1  # one token back
    assert rl.check("a").allowed and not rl.check("a").allowed
    assert rl.check("b").allowed  # separate bucket per key
    clk.t += 10
    assert rl.check("a").remaining == 4


def test_cost_and_route_rules() -> None:
    clk = FakeClock()
    rl = AdaptiveRateLimiter("10/second", 10, routes={"/login": "2/minute;2"}, clock=clk)
    assert rl.check("a", cost=8).allowed
    assert not rl.check("a", cost=3).allowed
    assert rl.check("a", route="/login").allowed and rl.check("a", route="/login").allowed
    d = rl.check("a", route="/login")
    assert not d.allowed and d.retry_after == pytest.approx(30.0)
    assert dict(d.headers())["ratelimit-policy"] == '"/login";q=2;w=60'
    assert rl.check("a", route="/other").allowed  # default bucket, untouched by /login


def _rec(status: int = 200, route: str = "/", path: str = "/", method: str = "GET") -> RequestRecord:
    return RequestRecord(method, route, path, status, 0.0, 1.0, 1.0, 0.0, 0)


def test_suspicious_client_gets_half_rate_only_when_confident() -> None:
    clk = FakeClock()
    # (auth-failure backoff off: with it this client is refused outright after 5 401s,
    # tests/control/test_ratelimit_backoff.py; here the multiplier is under test)
    rl = AdaptiveRateLimiter("10/second", 10, clock=clk, auth_failures_allowed=0)
    # Credential stuffing: POST /login every 0.2 s like clockwork, 401s, rotating UAs.
    mults = []
    for i in range(40):
        clk.t += 0.2
        mults.append(rl.observe("bot", _rec(401, "/login", "/login", "POST"), f"ua{i % 7}",
                                f"user={i}"))
    assert mults[0] == 1.0  # no confidence yet: unchanged
    assert mults[-1] == 0.5 and rl.suspicion("bot") > 0.5
    d = rl.check("bot")
    assert d.limit == 5 and d.multiplier == 0.5
    assert sum(rl.check("bot").allowed for _ in range(20)) == 4  # 5 tokens of burst, not 10


def test_clean_long_history_is_trusted() -> None:
    clk = FakeClock()
    rl = AdaptiveRateLimiter("10/second", 10, clock=clk)
    gaps = [0.5, 3.0, 0.2, 7.0, 1.0, 0.1, 4.0]
    for i in range(60):
        clk.t += gaps[i % len(gaps)]
        m = rl.observe("human", _rec(200, "/page", f"/page/{i % 5}"), "Firefox", "")
    assert m == 2.0 and rl.check("human").limit == 20


def test_eviction_keeps_penalty_record() -> None:
    clk = FakeClock()
    rl = AdaptiveRateLimiter("10/second", 10, clock=clk, max_clients=3)
    for i in range(40):
        clk.t += 0.2
        rl.observe("bot", _rec(401, "/login", "/login", "POST"), f"ua{i % 5}", f"u={i}")
    before = rl.suspicion("bot")
    assert before > 0.5
    for k in ("x", "y", "z"):
        rl.observe(k, _rec())
    assert "bot" not in rl.behaviour.profiles and rl.behaviour.evictions >= 1
    assert rl.suspicion("bot") == pytest.approx(before)
    # The returning client is still limited at half rate and its profile starts punished.
    assert rl.check("bot").multiplier == 0.5
    clk.t += 0.2
    rl.observe("bot", _rec(200), "ua", "")
    assert rl.behaviour.profiles["bot"].suspicion >= 0.5
    assert rl.check("bot").multiplier == 0.5


def test_memory_storage_is_bounded_and_drops_expired_first() -> None:
    clk = FakeClock()
    st = MemoryStorage(clk, max_keys=100)
    for i in range(100):
        st.take(f"old{i}", "", 0.01, 1.0, 1.0)  # expires 10 ms later
    clk.t += 1.0
    st.take("punished", "", 10.0, 100.0, 5.0)  # 50 s of debt
    for i in range(50):
        st.take(f"new{i}", "", 10.0, 100.0, 1.0)
    assert len(st) <= 100
    assert "punished" in st.tat and st.evictions == 0
    for i in range(200):
        st.take(f"more{i}", "", 10.0, 100.0, 1.0)
    assert len(st) <= 100 and "punished" in st.tat  # least-debt buckets go first


def _minimal_gcra(tat: dict[str, float], key: str, now: float) -> bool:
    """The least a rate check can do: one GCRA step on a dict (the baseline below)."""
    t = max(tat.get(key, now), now)
    if t - now > 1.0:
        return False
    tat[key] = t + 0.01
    return True


def test_check_throughput_in_memory() -> None:
    """The hot path costs a small multiple of one bare GCRA step measured in the same run.

    Both are timed in interleaved chunks of 500 calls by this process's CPU time, the best
    chunk of each kept: other processes on a loaded machine neither stretch a chunk nor
    slow one side only. Under 3 busy loops on 2 cores the ratio is 4.6-4.7 (a check at
    ~940k/s); the bar, 12, fails a hot path ~2.5x slower (the old wall-clock floor of
    60k/s failed under load by itself; benchmarks/ratelimit_sim.py keeps the 200k/s bar)."""
    rl = AdaptiveRateLimiter("100/second")
    keys = [f"ip:10.0.{i // 256}.{i % 256}" for i in range(1000)]
    tat: dict[str, float] = {}
    chunk, rounds = 500, 100
    best_check = best_base = float("inf")
    for r in range(rounds):
        batch = [keys[(r * chunk + i) % 1000] for i in range(chunk)]
        t0 = time.process_time()
        for key in batch:
            rl.check(key)
        best_check = min(best_check, time.process_time() - t0)
        t0 = time.process_time()
        for key in batch:
            _minimal_gcra(tat, key, time.monotonic())
        best_base = min(best_base, time.process_time() - t0)
    ratio = best_check / best_base
    assert ratio < 12, (ratio, chunk / best_check)


def test_state_survives_a_restart() -> None:
    import json

    clk = FakeClock()
    rl = AdaptiveRateLimiter("10/second", 10, clock=clk)
    for i in range(40):
        clk.t += 0.2
        rl.observe("bot", _rec(401, "/login", "/login", "POST"), f"ua{i % 5}", f"u={i}")
        rl.observe("human", _rec(200, "/page", f"/page/{i % 3}"), "Firefox", "")
    state = json.loads(json.dumps(rl.state()))  # JSON-able, as the registry stores it
    fresh = AdaptiveRateLimiter("10/second", 10, clock=clk)
    fresh.load_state(state)
    assert fresh.check("bot").multiplier == 0.5  # still punished after the restart
    assert fresh.suspicion("bot") == pytest.approx(rl.suspicion("bot"))
    assert fresh.behaviour.pop_mean == rl.behaviour.pop_mean
    with pytest.raises(ValueError):
        fresh.load_state({"version": 2})
    with pytest.raises(ValueError):
        fresh.load_state({**state, "pop_mean": [0.0]})
