"""httpx (sync and async) and requests against a real local server: per upstream and
route, status, failures, errors and timeouts; URLs redacted; per-request tally."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
import requests

import pulsegate.outbound
from pulsegate.context import current
from pulsegate.engine import PulseGate
from pulsegate.io_tally import tally_of
from pulsegate.outbound.hooks import uninstrument
from pulsegate.records import RequestInfo


@pytest.fixture()
def gate() -> Iterator[PulseGate]:
    gate = PulseGate()
    yield gate
    uninstrument()
    gate.close()


def upstream_row(gate: PulseGate, url: str) -> dict[str, object]:
    rows = pulsegate.outbound.report(gate)["upstreams"]
    return next(r for r in rows if r["upstream"] == url)


def routes(row: dict[str, object]) -> dict[str, dict[str, object]]:
    return {r["route"]: r for r in row["routes"]}  # type: ignore[attr-defined]


def test_httpx_sync_per_route_and_status(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    with httpx.Client() as client:
        for uid in (1, 2, 3):
            client.get(f"{upstream.url}/users/{uid}?token=secret")
        client.get(f"{upstream.url}/fail")
    row = upstream_row(gate, upstream.url)
    assert row["calls"] == 4 and row["failures"] == 1
    r = routes(row)
    assert r["/users/{id}"]["calls"] == 3 and r["/users/{id}"]["statuses"] == {"2xx": 3}
    assert r["/fail"]["statuses"] == {"5xx": 1}
    assert "secret" not in repr(pulsegate.outbound.report(gate))


async def test_httpx_async(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    async with httpx.AsyncClient() as client:
        await client.get(f"{upstream.url}/ok")
        await client.get(f"{upstream.url}/slow/30")
    row = upstream_row(gate, upstream.url)
    assert row["calls"] == 2
    assert routes(row)["/slow/{id}"]["max_ms"] >= 30  # type: ignore[operator]


def test_requests(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    url = upstream.url.replace("http://", "http://bob:pw@")
    assert requests.get(f"{url}/ok?q=1", timeout=5).status_code == 200
    requests.get(f"{upstream.url}/fail", timeout=5)
    row = upstream_row(gate, upstream.url)
    assert row["calls"] == 2 and row["failures"] == 1
    assert "pw" not in repr(pulsegate.outbound.report(gate))


def test_timeouts_and_errors_reach_the_caller_unchanged(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{upstream.url}/slow/500", timeout=0.05)
    with pytest.raises(requests.Timeout):
        requests.get(f"{upstream.url}/slow/500", timeout=0.05)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{dead}/ok")
    assert upstream_row(gate, upstream.url)["timeouts"] == 2
    assert upstream_row(gate, dead)["errors"] == 1
    assert gate.stats()["internal_errors"] == 0


def test_named_route(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    with pulsegate.outbound.route("/users/{user}"), httpx.Client() as client:
        client.get(f"{upstream.url}/users/ada")
        client.get(f"{upstream.url}/users/grace")
    assert set(routes(upstream_row(gate, upstream.url))) == {"/users/{user}"}


def test_route_templates_per_upstream_are_capped(upstream) -> None:  # type: ignore[no-untyped-def]
    gate = PulseGate(outbound_max_routes=5)
    try:
        pulsegate.outbound.instrument(gate)
        with httpx.Client() as client:
            for word in ("a", "b", "c", "d", "e", "f", "g", "h"):
                client.get(f"{upstream.url}/word-{word}")
        names = set(routes(upstream_row(gate, upstream.url)))
        assert len(names) == 6 and "*" in names
    finally:
        uninstrument()
        gate.close()


def test_the_request_tally(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    pulsegate.outbound.instrument(gate)
    ctx = gate.begin(RequestInfo("GET", "/page", "/page"))
    assert ctx is not None and current() is ctx
    httpx.get(f"{upstream.url}/ok")
    httpx.get(f"{upstream.url}/fail")
    tally = tally_of(ctx)
    gate.finish(ctx)
    assert tally is not None and tally.out_calls == 2 and tally.out_errors == 1
    assert set(tally.upstreams) == {upstream.url}


def test_uninstrumented_clients_are_untouched(upstream) -> None:  # type: ignore[no-untyped-def]
    before = httpx.HTTPTransport.handle_request
    gate = PulseGate()
    pulsegate.outbound.instrument(gate)
    uninstrument()
    assert httpx.HTTPTransport.handle_request is before
    gate.close()


async def test_one_transport_only(upstream, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    watched = httpx.AsyncHTTPTransport()
    pulsegate.outbound.instrument(gate, watched)
    async with httpx.AsyncClient(transport=watched) as client:
        await client.get(f"{upstream.url}/ok")
    async with httpx.AsyncClient() as other:   # not instrumented
        await other.get(f"{upstream.url}/ok")
    assert upstream_row(gate, upstream.url)["calls"] == 1
