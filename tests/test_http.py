"""Attack probes on the framework-free request-header views (pulsegate.http)."""

from __future__ import annotations

from growth import assert_linear
from pulsegate.http import ASGIHeaders, environ_header_names


def test_repeated_headers_are_joined_in_linear_time() -> None:
    """n copies of one header: each used to be re-joined onto the growing value
    (O(n^2) bytes copied: 10k -> 100k took 5 ms -> 2 s)."""
    assert_linear(lambda raw: ASGIHeaders(raw).get("x-a"), lambda n: [(b"X-A", b"v")] * n)


def test_repeated_headers_are_joined_in_order_whatever_their_case() -> None:
    h = ASGIHeaders([(b"A", b"1"), (b"b", b"2"), (b"a", b"3"), (b"A", b"4")])
    assert (h.get("a"), h.get("b"), h.get("c")) == ("1, 3, 4", "2", None)


def test_many_distinct_headers_are_listed_in_linear_time() -> None:
    assert_linear(lambda raw: ASGIHeaders(raw).names(),
                  lambda n: [(b"x-%d" % i, b"v") for i in range(n)])
    assert_linear(environ_header_names, lambda n: {f"HTTP_X_{i}": "v" for i in range(n)})
