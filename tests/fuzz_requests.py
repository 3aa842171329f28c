"""The standing request-side fuzz harness (issue 18, item 7): hypothesis strategies for
whole HTTP requests -- methods, paths, query strings, raw header bytes, bodies in
chunks, client disconnects -- and echo applications whose answer depends on all of it.

The properties (``tests/test_fuzz_asgi.py``, ``tests/test_fuzz_wsgi.py``,
``tests/django_adapter/test_django_fuzz.py``): behind pulsegate the application's
response is byte-for-byte the one it gives bare, apart from pulsegate's own headers,
and pulsegate records no internal error. The gate runs with everything that reads
request input switched on: rate limiting with a rate no test reaches, every proxy
trusted and every forwarding header named (so fuzzed ``X-Forwarded-For`` /
``Forwarded`` values are parsed), priority rules, the allocator.

CI runs a few hundred examples per adapter; ``benchmarks/fuzz_soak.py`` runs the same
tests with ``PULSEGATE_FUZZ_EXAMPLES`` examples each.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pulsegate.engine import PulseGate

EXAMPLES = int(os.environ.get("PULSEGATE_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(ci_examples: int) -> Any:
    return settings(max_examples=EXAMPLES or ci_examples, deadline=None, derandomize=not EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


#: pulsegate's own response headers: everything else must be the application's
def is_pulsegate_header(name: str | bytes) -> bool:
    n = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
    return n.startswith("x-ml-") or n in ("ratelimit", "ratelimit-policy")


def gate_options() -> dict[str, Any]:
    return {"warmup": 3, "measure_cpu": False, "measure_memory": False, "log_events": False,
            "rate_limiting": True, "rate_limit": "1000000/second",
            "trusted_proxies": ["0.0.0.0/0", "::/0"],
            "forwarded_header": ["forwarded", "x-real-ip", "x-forwarded-for"],
            "priority_header": "x-priority", "priority_rules": {"/low*": "low"},
            "resource_allocation": True, "max_concurrency": 64, "initial_concurrency": 64,
            "max_queue_wait": 1.0}


def new_gate() -> PulseGate:
    return PulseGate(**gate_options())


def no_internal_error(gate: PulseGate) -> None:
    stats = gate.stats()
    assert stats["internal_errors"] == 0, stats.get("internal_errors_by_kind")


# --- strategies ----------------------------------------------------------------------

TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                min_size=1, max_size=12)
METHODS = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                     "OPTIONS", "TRACE", "CONNECT", "get", "BREW"]), TOKEN)
SEGMENT = st.one_of(st.sampled_from(["", ".", "..", "health", "healthz", "_pulsegate",
                                     "metrics", "low", "api", "%2e%2e", "%00", "a;b", "ü",
                                     "\x00", "\ud800x"[:1] + "x", "*"]),
                    st.text(max_size=20))
PATHS = st.one_of(st.lists(SEGMENT, max_size=6).map(lambda s: "/" + "/".join(s)),
                  st.text(max_size=40), st.just("/health"), st.just("/" + "a" * 5000))
HEADER_NAMES = st.one_of(
    st.sampled_from([b"host", b"user-agent", b"x-forwarded-for", b"forwarded", b"x-real-ip",
                     b"content-type", b"content-length", b"cookie", b"authorization",
                     b"x-priority", b"traceparent", b"x-api-key", b"origin", b"accept",
                     b"transfer-encoding", b"x_forwarded_for", b"X-Forwarded-For"]),
    st.binary(min_size=1, max_size=16))
FORWARDED_VALUES = st.one_of(
    st.lists(st.one_of(st.ip_addresses().map(str), st.sampled_from(
        ["unknown", "_hidden", "[::1]:80", "1.2.3.4:5", '"[2001:db8::1]"', "", " ", ";",
         "for=", "for=1.2.3.4;by=x", "for=\"", "999.1.1.1"])), max_size=6
             ).map(lambda xs: ", ".join(xs).encode("latin-1", "replace")),
    st.binary(max_size=64))
HEADER_VALUES = st.one_of(st.binary(max_size=64), FORWARDED_VALUES,
                          st.sampled_from([b"", b"high", b"low", b"none", b"\xff\xfe",
                                           b"a" * 10_000, b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"]))
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=10)
QUERIES = st.one_of(st.binary(max_size=60), st.just(b"ms=1&n1=3"), st.just(b"a=" + b"%" * 300))
BODIES = st.lists(st.binary(max_size=300), max_size=4)
CLIENTS = st.one_of(st.none(), st.tuples(st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
                                         st.integers(0, 65535)))


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    """One request: everything the server hands an application, plus what the client
    does while the application runs (``disconnect_after``: body chunks delivered before
    the client goes away; None: it stays)."""
    body = draw(BODIES)
    return {"method": draw(METHODS), "path": draw(PATHS), "query": draw(QUERIES),
            "headers": draw(HEADERS), "body": body, "client": draw(CLIENTS),
            "disconnect_after": draw(st.one_of(st.none(), st.integers(0, len(body)))),
            # ASGI: the server's send() fails after this many messages (peer reset)
            "send_fails_after": draw(st.one_of(st.none(), st.none(), st.integers(0, 3))),
            # what the app does: answer status, response chunks, or fail
            "status": draw(st.sampled_from([200, 201, 204, 301, 304, 400, 404, 429, 500, 503])),
            "chunks": draw(st.integers(1, 3)),
            "fail": draw(st.sampled_from([None, None, None, "before", "after"]))}


def digest_of(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big") + p)
    return h.hexdigest().encode()


class AppFailure(Exception):
    """What the echo applications raise when a request asks them to fail."""
