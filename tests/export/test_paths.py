"""Request paths leave the process folded (``raw_paths=False``, the default): the
dashboard and the state file show a segment no route template spells as ``{*}``;
predictions and alerts carry the endpoint only. Logs: tests/export/test_logs.py."""

from __future__ import annotations

import doctest
import random
import string
from typing import Any

import httpx
import pytest
from exportkit import SECRET, FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.export import paths, state
from pulsegate.export.paths import PathExport

AUTH = {"authorization": f"Bearer {SECRET}"}


def token() -> str:
    """A path segment no route spells (letters only: not folded as an id)."""
    return "".join(random.Random(11).choices(string.ascii_letters, k=14))


async def serve(app: Any, paths: list[str]) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        for p in paths:
            await client.get(p)
        r = await client.get("/_pulsegate/api/summary", headers=AUTH)
        assert r.status_code == 200
        return dict(r.json())


@pytest.mark.parametrize("raw", [False, True])
async def test_every_channel_gets_the_path_folded_unless_raw(clock: FakeClock,
                                                             raw: bool) -> None:
    secret = token()
    alerts: list[Any] = []
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, raw_paths=raw,
                     alert_critical_score=0.5, alert_callback=alerts.append)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    slow = f"/work/{secret}"
    d = await serve(app, [*(f"/work/{i}?ms={10 + i % 3}" for i in range(20)),
                          f"{slow}?ms=400"])
    gate.scheduler.run_all()  # alerts are delivered by the scheduler
    expected = slow if raw else "/work/{*}"
    shown = [a["path"] for a in d["anomalies"] if a["duration_ms"] > 300]
    kept = [p.summary for p in gate.ops.predictions.recent(50)
            if p.summary.get("duration_ms", 0) > 300]
    paged = [a for a in alerts if "critical" in a.kind]
    saved = state(gate).series.state()  # type: ignore[union-attr]
    assert shown == [expected]
    # predictions and alerts name the endpoint, not the path (made on the request path)
    assert kept and all(k["endpoint"] == "GET /work/{item}" and "path" not in k for k in kept)
    assert paged and all("path" not in a.fields and secret not in a.message for a in paged)
    assert [a["path"] for a in saved["anomalies"]] == [expected]
    assert raw or secret not in repr((d, saved, [p.summary for p in
                                                 gate.ops.predictions.recent(50)]))
    gate.close()


def test_a_path_is_folded_in_linear_time_and_bounded() -> None:
    export = PathExport(words={"users"})
    long = "/users/" + "a" * 100_000
    folded = export(long)
    assert len(folded) <= 210 and folded.startswith("/users/")
    assert export("/users/" + "b/" * 50_000).endswith("...")


def test_doctests_pass() -> None:
    assert doctest.testmod(paths).failed == 0


def learnt_gate() -> Any:
    """A gate that learnt one route, ``GET /users/{id}``."""
    from pulsegate.engine import PulseGate
    gate = PulseGate(log_events=False)
    gate.baselines.lookup("GET", "/users/{id}")
    return gate


def test_names_of_jobs_and_upstreams_are_not_path_words() -> None:
    """Attack probe: units' models share the endpoints' store, but a job's name or an
    upstream's host is no route template -- an application that calls the URLs its
    users give (webhooks) would let them choose words kept in every path."""
    from pulsegate.outbound.monitor import UPSTREAM
    from pulsegate.units import JOB
    gate = learnt_gate()
    gate.units.record(UPSTREAM, "https://jo-smith.example.com", 5.0)
    gate.units.record(JOB, "mail.reset_password", 5.0)
    assert paths.exported_path(gate, "/users/jo.smith") == "/users/{*}.{*}"
    assert paths.exported_path(gate, "/users/reset.password") == "/users/{*}.{*}"
    gate.close()


@pytest.mark.parametrize("max_endpoints", [2, 1000])
def test_a_route_learnt_later_gives_its_words_to_paths_folded_before(
        max_endpoints: int) -> None:
    """A path folded before its route was learnt is folded again with the route's words;
    also at ``max_endpoints``, where a new route evicts an old one and the number of
    routes stays put."""
    from pulsegate.engine import PulseGate
    clock = FakeClock()
    gate = PulseGate(log_events=False, max_endpoints=max_endpoints, clock=clock)
    gate.baselines.lookup("GET", "/users/{id}")
    gate.baselines.lookup("GET", "/orders/{id}")
    assert paths.exported_path(gate, "/invoices/7") == "/{*}/{id}"
    gate.baselines.lookup("GET", "/invoices/{id}")
    assert len(gate.baselines) == min(3, max_endpoints)
    clock.t += paths.REREAD_SECONDS
    assert paths.exported_path(gate, "/invoices/7") == "/invoices/{id}"
    gate.close()


def test_the_routes_are_read_again_at_most_once_a_second() -> None:
    """Attack probe: at ``max_endpoints`` each new upstream host (a URL a user gave)
    evicts a model, so the store changes at every call; its route templates' words
    (≈ 3 ms to read at 1 000 routes) are read again at most once in ``REREAD_SECONDS``
    -- a route learnt in between is kept folded until then (fail-closed)."""
    from pulsegate.engine import PulseGate
    from pulsegate.outbound.monitor import UPSTREAM
    clock = FakeClock()
    gate = PulseGate(log_events=False, max_endpoints=3, clock=clock)
    gate.baselines.lookup("GET", "/users/{id}")
    assert paths.exported_path(gate, "/invoices/7") == "/{*}/{id}"
    gate.units.record(UPSTREAM, "https://host.example.com", 5.0)
    gate.baselines.lookup("GET", "/invoices/{id}")
    clock.t += paths.REREAD_SECONDS / 2
    assert paths.exported_path(gate, "/invoices/7") == "/{*}/{id}"
    clock.t += paths.REREAD_SECONDS / 2
    assert paths.exported_path(gate, "/invoices/7") == "/invoices/{id}"
    gate.close()


def test_folding_takes_time_linear_in_the_paths_length() -> None:
    """Attack probe: 1k-100k-character paths of short segments, of id-like runs and of
    one word (none remembered: longer than the memo keeps)."""
    from growth import assert_linear
    gate = learnt_gate()
    export = lambda path: paths.exported_path(gate, path)  # noqa: E731
    assert_linear(export, lambda n: "/users/" + "ab/" * (n // 3))
    assert_linear(export, lambda n: "/users/" + "-" * n + "x1" * (n // 2))
    assert_linear(export, lambda n: "/" + "users" * (n // 5))
    gate.close()


def test_the_memory_of_folded_paths_is_bounded_by_configuration_not_traffic() -> None:
    """Attack probe: 16 000 distinct 190-character paths (each under the length the
    memo keeps): what is held after 8 000 is what is held after 16 000."""
    import tracemalloc
    gate = learnt_gate()
    rng = random.Random(3)
    sprayed = ["/users/" + "".join(rng.choices("abcdef/.", k=183)) for _ in range(16_000)]
    tracemalloc.start()
    try:
        for path in sprayed[:8_000]:
            paths.exported_path(gate, path)
        held = tracemalloc.get_traced_memory()[0]
        for path in sprayed[8_000:]:
            paths.exported_path(gate, path)
        more = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert more - held < 50_000, (held, more)  # 1.77 MB at 10 000, 20 000 and 40 000
    gate.close()


class ChurningRoutes:
    """A store at its cap that evicts a route at every look (an application with more
    routes than ``max_endpoints``): two route sets in turn, and how often they were read."""

    def __init__(self) -> None:
        self.evictions = 0
        self.reads = 0
        self.sets = (["GET /users/{id}", "GET /static/{name}"], ["GET /users/{id}", "GET /reports"])

    def __len__(self) -> int:
        self.evictions += 1
        return 2

    def __iter__(self) -> Any:
        self.reads += 1
        return iter(self.sets[self.reads % 2])


def test_routes_churning_at_every_call_cost_one_read_and_one_forget_a_second() -> None:
    """Attack probe (hsec4): routes that change at every look, and words that change at
    every read, exported 1 000 times a second for 20 s: the routes are read, and the
    folds forgotten, at most once a second -- the other exports fold from the memo --
    and every export folds over the words of the latest read (fail-closed between)."""
    clock = FakeClock()
    routes = ChurningRoutes()
    export = PathExport(words=paths.RouteWords(routes, clock=clock))
    for _second in range(20):
        for i in range(1_000):
            clock.t += 0.001
            got = export(f"/reports/{i % 7}")
            words = export.route_words.words  # type: ignore[union-attr]
            assert got == ("/reports/{id}" if "reports" in words else "/{*}/{id}")
    assert routes.reads <= 21
    assert 19 <= export.route_words.changes <= 21  # type: ignore[union-attr]
