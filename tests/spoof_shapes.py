"""Every way a client behind a trusted proxy tried to pick its own rate-limit key
(issue 18, hole 1), shared by the ASGI, WSGI and Django tests.

The set-up: the proxy at 10.0.0.2 (``trusted_proxies=["10.0.0.0/8"]``) saw the client
at ``REAL`` and wrote what ``forwarded_header`` says it writes; everything else in the
request is the client's own. Request ``i`` carries a fresh forged value, so a shape that
works gets a fresh bucket every time (40 of 40 allowed with a burst of 5, before)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

REAL = "203.0.113.5"
PROXY = "10.0.0.2"
TRUSTED = ["10.0.0.0/8"]
N = 40
BURST = 5


class Shape(NamedTuple):
    name: str
    options: dict[str, Any]
    #: request i -> header lines (name, value) in the order they arrive; repeated names
    #: are separate lines
    headers: Callable[[int], list[tuple[str, str]]]
    peer: str = PROXY
    #: the key every request must get
    key: str = "ip:" + REAL


def _forged(i: int) -> str:
    return f"198.51.{i // 250}.{i % 250 + 1}"


XFF = {"forwarded_header": "x-forwarded-for"}
SHAPES = [
    # nginx appends X-Forwarded-For and passes the client's Forwarded through untouched
    Shape("forwarded-for", {}, lambda i: [("forwarded", f"for={_forged(i)}"),
                                          ("x-forwarded-for", REAL)]),
    Shape("forwarded-for-v6-quoted", {}, lambda i: [
        ("forwarded", f'for="[2001:db8::{i + 1:x}]:443";proto=https'), ("x-forwarded-for", REAL)]),
    Shape("xff-forged-prefix", XFF, lambda i: [("x-forwarded-for", f"{_forged(i)}, {REAL}")]),
    Shape("xff-forged-trusted-looking", XFF, lambda i: [
        ("x-forwarded-for", f"10.9.{i}.1, {_forged(i)}, {REAL}")]),
    Shape("x-real-ip", XFF, lambda i: [("x-real-ip", _forged(i)), ("x-forwarded-for", REAL)]),
    Shape("cf-connecting-ip", XFF, lambda i: [("cf-connecting-ip", _forged(i)),
                                              ("x-forwarded-for", REAL)]),
    Shape("true-client-ip", XFF, lambda i: [("true-client-ip", _forged(i)),
                                            ("x-forwarded-for", REAL)]),
    # the client sends its own X-Forwarded-For line; the proxy adds a second line
    Shape("xff-two-lines", XFF, lambda i: [("x-forwarded-for", _forged(i)),
                                           ("x-forwarded-for", REAL)]),
    Shape("xff-garbage-entries", XFF, lambda i: [
        ("x-forwarded-for", f"{'x' * (i + 1)}, unknown, _hidden, {REAL}")]),
    Shape("xff-long-chain", XFF, lambda i: [
        ("x-forwarded-for", ", ".join(_forged(j) for j in range(i, i + 2000)) + ", " + REAL)]),
    Shape("xff-respelled", XFF, lambda i: [
        ("x-forwarded-for", [REAL, f"{REAL}:{1000 + i}", f"::ffff:{REAL}",
                             f"[::ffff:{REAL}]:{i + 1}"][i % 4])]),
    # a proxy that appends Forwarded: the client's X-Forwarded-For and its own
    # Forwarded elements (left of the proxy's) are ignored
    Shape("forwarded-proxy", {"forwarded_header": "forwarded"}, lambda i: [
        ("x-forwarded-for", _forged(i)), ("forwarded", f"for={_forged(i)}, for={REAL}")]),
    # a proxy that sets X-Real-IP (and passes the rest through)
    Shape("x-real-ip-proxy", {"forwarded_header": "x-real-ip"}, lambda i: [
        ("x-forwarded-for", _forged(i)), ("forwarded", f"for={_forged(i)}"), ("x-real-ip", REAL)]),
    # a CDN (sets cf-connecting-ip) in front of a load balancer (appends XFF)
    Shape("cdn-then-lb", {"forwarded_header": ["cf-connecting-ip", "x-forwarded-for"],
                          "trusted_proxies": [*TRUSTED, "172.64.0.0/13"]}, lambda i: [
        ("true-client-ip", _forged(i)), ("x-forwarded-for", f"{_forged(i)}, 172.64.0.9"),
        ("cf-connecting-ip", REAL)]),
    # straight to the app, around the proxy: nothing but the peer counts
    Shape("bypassing-the-proxy", {}, lambda i: [
        ("x-forwarded-for", _forged(i)), ("forwarded", f"for={_forged(i)}"),
        ("x-real-ip", _forged(i))], peer="192.0.2.77", key="ip:192.0.2.77"),
]


def gate_options(shape: Shape) -> dict[str, Any]:
    return {"rate_limiting": True, "rate_limit": f"{BURST}/hour", "rate_limit_burst": BURST,
            "trusted_proxies": TRUSTED, "warmup": 5, "measure_cpu": False,
            "measure_memory": False, "log_events": False, **shape.options}


def joined(lines: list[tuple[str, str]]) -> dict[str, str]:
    """Header lines as a WSGI server hands them over: repeated names joined with ", "
    in arrival order (what gunicorn, uvicorn and Django's test client do)."""
    out: dict[str, str] = {}
    for name, value in lines:
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def check(shape: Shape, statuses: list[int], keys: list[str | None]) -> None:
    allowed = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert set(keys) == {shape.key}, (shape.name, set(keys))
    # The behaviour profile may lower the rate of a client hammering like this; it can
    # never raise it above the burst in 40 requests on the fake clock.
    assert 1 <= allowed <= BURST, (shape.name, allowed)
