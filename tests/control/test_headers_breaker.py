from __future__ import annotations

from pulsegate.control.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from pulsegate.control.headers import policy_name, ratelimit_headers


def test_ietf_structured_fields() -> None:
    h = dict(ratelimit_headers('"default"', 100, 60, 42, 17.2))
    assert h == {"ratelimit-policy": '"default";q=100;w=60', "ratelimit": '"default";r=42;t=18'}
    h = dict(ratelimit_headers('"default"', 10, 1, 0, 0.5, retry_after=0.05))
    assert h["retry-after"] == "1"  # never 0: a client must wait at least a second
    assert h["ratelimit"] == '"default";r=0;t=1'


def test_policy_name_is_an_sf_string() -> None:
    assert policy_name('/a"b\\c') == '"/a\\"b\\\\c"'
    assert policy_name("caf\u00e9") == '"caf"'


def test_breaker_opens_half_opens_and_closes() -> None:
    t = [0.0]
    b = CircuitBreaker(3, 10.0, clock=lambda: t[0])
    for _ in range(2):
        b.failure()
    assert b.state == CLOSED and b.allow()
    b.success()
    for _ in range(3):
        b.failure()
    assert b.state == OPEN and not b.allow()
    t[0] = 9.9
    assert not b.allow()
    t[0] = 10.0
    assert b.allow() and b.state == HALF_OPEN
    assert not b.allow()  # one trial at a time
    b.failure()
    assert b.state == OPEN and b.opens == 2
    t[0] = 20.0
    assert b.allow()
    b.success()
    assert b.state == CLOSED and b.allow()
