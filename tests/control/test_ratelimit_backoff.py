"""Auth-failure backoff (issue 23, item 3's distributed credential stuffing): after
``auth_failures_allowed`` consecutive 401/403 answers a client waits, doubling from
``min(window, 60 s)`` after each further failure, so a key that only ever fails gets a
number of tries logarithmic in time, however slowly it sends."""

from __future__ import annotations

from fakeclock import FakeClock
from pulsegate.control.ratelimit import AdaptiveRateLimiter
from pulsegate.records import RequestRecord


def attempt(rl: AdaptiveRateLimiter, clock: FakeClock, status: int, key: str = "bot",
            path: str = "/login") -> bool:
    """One request: checked, then observed with its answer (429 when refused)."""
    ok = rl.check(key).allowed
    rl.observe(key, RequestRecord("POST", path, path, status if ok else 429, clock.t, 1.0, 1.0,
                                  0.0, 0), "UA", "")
    return ok


def admitted_times(rl: AdaptiveRateLimiter, clock: FakeClock, gap: float, seconds: float,
                   status: int = 401) -> list[float]:
    start, out = clock.t, []
    while clock.t - start < seconds:
        if attempt(rl, clock, status):
            out.append(clock.t - start)
        clock.t += gap
    return out


def test_a_key_that_only_fails_is_held_back_after_five_failures_with_doubling_waits() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock)
    times = admitted_times(rl, clock, 10.0, 1000.0)  # one login every 10 s: far under the rate
    assert times[:5] == [0.0, 10.0, 20.0, 30.0, 40.0]
    # after the 5th failure: 60 s, then 120, 240, 480 s after each admitted failure
    assert times[5:] == [100.0, 220.0, 460.0, 940.0]


def test_refused_retries_do_not_re_arm_the_wait() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock)
    fast = admitted_times(rl, clock, 1.0, 170.0)  # retries every second while waiting
    assert fast[5:] == [64.0]  # 60 s after the 5th failure at 4 s, not 60 s after a retry
    decision = rl.check("bot")
    assert not decision.allowed and 0 < decision.retry_after <= 120.0


def test_a_success_ends_the_streak_and_a_404_does_not() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock)
    for status in (401, 401, 401, 401, 404, 401):  # a 404 between tries keeps the count
        assert attempt(rl, clock, status)
        clock.t += 5.0
    assert not rl.check("bot").allowed
    clock.t += 61.0
    assert attempt(rl, clock, 200)  # the password was right after all
    for _ in range(4):
        clock.t += 5.0
        assert attempt(rl, clock, 401)
    clock.t += 5.0
    assert rl.check("bot").allowed


def test_other_clients_and_other_errors_are_not_held_back() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock)
    for _ in range(10):
        clock.t += 5.0
        attempt(rl, clock, 401)
        assert attempt(rl, clock, 500, key="flaky")  # server errors are not auth failures
    assert rl.check("reader").allowed and rl.check("flaky").allowed
    assert not rl.check("bot").allowed


def test_zero_turns_the_backoff_off() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock, auth_failures_allowed=0)
    assert len(admitted_times(rl, clock, 10.0, 300.0)) == 30


def test_a_clock_that_jumps_back_never_leaves_a_key_stuck() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock)
    admitted_times(rl, clock, 1.0, 10.0)  # in backoff now
    assert not rl.check("bot").allowed
    clock.t -= 1e6  # the wait now looks a million seconds long: longer than any backoff
    rl.check("bot")  # (refused by its bucket, whose debt looks as long: the clock's fault)
    assert "bot" not in rl.backoff
    fresh = AdaptiveRateLimiter("60/minute", clock=clock)
    fresh.backoff["bot"] = clock.t + 1e6  # a wait set before the clock went back
    assert fresh.check("bot").allowed


def test_the_backoff_map_is_bounded() -> None:
    clock = FakeClock()
    rl = AdaptiveRateLimiter("60/minute", clock=clock, max_clients=50)
    for i in range(400):
        for _ in range(6):
            attempt(rl, clock, 401, key=f"bot{i}")
        clock.t += 0.01
    assert len(rl.backoff) <= 50
    assert not rl.check("bot399").allowed  # the newest are kept
