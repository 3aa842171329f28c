"""Attack probes on the response cache's request-header rules (pulsegate.respcache.rules):
whatever a client sends -- many headers, long values, many response directives -- the
rules cost linear time, and a header the cache does not understand still refuses."""

from __future__ import annotations

from typing import Any

import pytest

from growth import assert_linear
from pulsegate.http import ASGIHeaders, EnvironHeaders
from pulsegate.respcache.rules import (
    freshness,
    request_key,
    request_refusal,
    response_refusal,
)

VARY = ("accept", "accept-language")


def asgi(pairs: list[tuple[str, str]]) -> ASGIHeaders:
    return ASGIHeaders([(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs])


def environ(pairs: list[tuple[str, str]]) -> EnvironHeaders:
    env = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in pairs}
    return EnvironHeaders(({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **env},))


def refusal(view: Any) -> str | None:
    return request_refusal(view, ("x-passed",))


@pytest.mark.parametrize("make_view", [asgi, environ])
def test_many_empty_unknown_headers_then_one_with_a_value_cost_linear_time(
        make_view: Any) -> None:
    """Unknown headers with empty values say nothing; each is looked at once."""
    def headers(n: int) -> Any:
        return make_view([*((f"x-e{i}", "") for i in range(n)), ("x-ticket", "t")])

    assert_linear(refusal, headers)
    assert refusal(headers(1_000)) == "x-ticket"


def test_a_repeated_fresh_header_is_read_in_linear_time_and_still_refuses() -> None:
    def headers(n: int) -> Any:
        return asgi([("cache-control", "max-age=1")] * n + [("cache-control", "no-cache")])

    assert_linear(refusal, headers)
    assert refusal(headers(1_000)) == "request cache-control"


@pytest.mark.parametrize("make_view", [asgi, environ])
def test_the_key_of_long_host_and_vary_values_costs_linear_time(make_view: Any) -> None:
    def key(view: Any) -> bytes:
        return request_key("GET", "/p", "q=1", view, VARY)

    def headers(n: int) -> Any:
        return make_view([("host", "h" * n), ("x-forwarded-host", "f" * n),
                          ("accept", "a" * n), ("accept-language", "l" * n)])

    assert_linear(key, lambda n: headers(n * 10))
    assert len(key(headers(10))) == 16 and key(headers(10)) != key(headers(11))


def test_response_directives_cost_linear_time_and_a_late_no_store_still_refuses() -> None:
    def headers(n: int) -> list[tuple[str, str]]:
        return [("cache-control", "public, " * n + "no-store"), ("vary", "accept, " * n)]

    assert_linear(lambda h: response_refusal(200, h, 5, 100, VARY), headers)
    assert_linear(lambda h: freshness(h, 30.0), headers)
    assert response_refusal(200, headers(1_000), 5, 100, VARY) == "cache-control"
