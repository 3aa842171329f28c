"""The trust knobs are PulseGate options (issue 23, item 4): ``trust_min_requests``,
``trust_min_seconds``, ``trust_shift_rate`` (and ``prediction_threshold``) set through
the configuration change when a client behind the middleware earns and loses the
trusted multiplier -- seen in the ``RateLimit-Policy`` quota it is served."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client

from fakeclock import FakeClock
from pulsegate import Config, ConfigError, PulseGate
from pulsegate.wsgi import PulseGateWSGIMiddleware

TRUSTED = 'q=120;w=60'  # rate_limit="60/minute" x trusted_multiplier (2)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    status = "401 Unauthorized" if environ["PATH_INFO"] == "/login" else "200 OK"
    start_response(status, [("content-type", "text/plain")])
    return [b"ok"]


class OneClient:
    """One client's requests through the WSGI middleware on a simulated clock; the
    behaviour job runs after each request (in production every 0.5 s)."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.gate = PulseGate(rate_limiting=True, rate_limit="60/minute", clock=self.clock,
                              wall=self.clock, **options)
        self.http = Client(PulseGateWSGIMiddleware(app, gate=self.gate))
        self.rng = random.Random(7)

    def send(self, gap: float, path: str) -> str:
        """The ``RateLimit-Policy`` the request was served with."""
        self.clock.t += gap
        policy = self.http.get(path).headers["ratelimit-policy"]
        assert self.gate.control is not None
        self.gate.control.flush()
        return policy

    def read(self, requests: int) -> list[str]:
        """A reader: five pages, a request every ~3 s."""
        return [self.send(self.rng.expovariate(1 / 3), f"/page/{self.rng.randrange(5)}")
                for _ in range(requests)]

    def close(self) -> None:
        self.gate.close()


@pytest.fixture
def make_client() -> Any:
    clients: list[OneClient] = []

    def make(**options: Any) -> OneClient:
        clients.append(OneClient(**options))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def first_trusted(policies: list[str]) -> int:
    return next(i for i, p in enumerate(policies) if p.endswith(TRUSTED))


@pytest.mark.parametrize("n", [5, 10, 30])
def test_trust_min_requests_is_when_a_confident_new_client_is_first_trusted(
        make_client: Any, n: int) -> None:
    # prediction_threshold=0: the profile's confidence does not hold the multiplier back,
    # so the request after the n-th is the first one served the trusted quota.
    client = make_client(trust_min_requests=n, prediction_threshold=0)
    assert first_trusted(client.read(60)) == n


def test_prediction_threshold_holds_the_multiplier_back_until_the_profile_is_confident(
        make_client: Any) -> None:
    eager = first_trusted(make_client(trust_min_requests=5, prediction_threshold=0).read(60))
    careful = first_trusted(make_client(trust_min_requests=5, prediction_threshold=0.7).read(60))
    assert eager == 5 < careful


@pytest.mark.parametrize(("seconds", "low", "high"), [(None, 120, 130), (30, 30, 40)])
def test_trust_min_seconds_is_the_clean_stretch_after_an_abrupt_change(
        make_client: Any, seconds: float | None, low: float, high: float) -> None:
    # None: two windows of rate_limit (60 s each).
    client = make_client(**({} if seconds is None else {"trust_min_seconds": seconds}))
    assert client.read(100)[-1].endswith(TRUSTED)
    client.send(3.0, "/login")
    client.send(3.0, "/login")  # two failures in a row: an abrupt change
    start = client.clock.t
    while not client.read(1)[0].endswith(TRUSTED):
        assert client.clock.t - start < 300, "trust never came back"
    assert low <= client.clock.t - start < high


@pytest.mark.parametrize(("options", "loses_trust"),
                         [({}, True), ({"trust_shift_rate": 1000}, False)])
def test_trust_shift_rate_decides_whether_a_ramp_inside_the_allowance_loses_trust(
        make_client: Any, options: dict[str, float], loses_trust: bool) -> None:
    # A trusted reader going from ~0.33 to 2 requests/s: within its 2x allowance, so only
    # the rate-change alarm can take its multiplier away -- at the default level within
    # 40 requests (33); at a level of 1000, not.
    client = make_client(**options)
    assert client.read(100)[-1].endswith(TRUSTED)
    ramp = [client.send(0.5, f"/page/{client.rng.randrange(5)}") for _ in range(40)]
    assert any(not p.endswith(TRUSTED) for p in ramp) is loses_trust


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("trust_min_requests", 0, "an integer >= 1 and <= 1_000_000"),
    ("trust_min_requests", 2.5, "an integer >= 1 and <= 1_000_000"),
    ("trust_min_seconds", -1, "a number >= 0 and <= 31_536_000, or none"),
    ("trust_shift_rate", 0.5, "a number >= 1 and <= 1_000"),
    ("trust_shift_rate", "fast", "a number >= 1 and <= 1_000"),
])
def test_bad_trust_options_are_config_errors(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{key: value})
    assert info.value.key == key and info.value.allowed == allowed
    assert str(info.value) == f"pulsegate: invalid {key}={value!r}; allowed: {allowed}"


def test_trust_options_from_the_environment() -> None:
    c = Config.from_env({"PULSEGATE_TRUST_MIN_REQUESTS": "12", "PULSEGATE_TRUST_MIN_SECONDS": "none",
                         "PULSEGATE_TRUST_SHIFT_RATE": "2.5"})
    assert (c.control.trust_min_requests, c.control.trust_min_seconds,
            c.control.trust_shift_rate) == (12, None, 2.5)
