"""The control step through the real ASGI middleware (Starlette app, in-process)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate


def make_app(gate: PulseGate, hold: asyncio.Event | None = None) -> tuple[Any, list[str]]:
    calls: list[str] = []

    async def page(request: Request) -> PlainTextResponse:
        calls.append(request.url.path)
        if hold is not None and request.url.path.startswith("/slow"):
            await hold.wait()
        if request.url.path == "/boom":
            raise RuntimeError("boom")
        return PlainTextResponse("ok")

    routes = [Route(p, page, methods=["GET", "POST"]) for p in
              ("/", "/login", "/items/{id}", "/slow/{name}", "/low/report", "/boom")]
    app = Starlette(routes=routes)
    app.add_middleware(PulseGateMiddleware, gate=gate)
    return app, calls


async def until(cond: Any, timeout: float = 10.0) -> None:
    """Wait (bounded) for another task to reach a state; fails instead of hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_off_means_no_control_and_no_headers() -> None:
    gate = PulseGate()
    app, _ = make_app(gate)
    assert gate.control is None
    async with client(app) as c:
        r = await c.get("/")
    assert r.status_code == 200 and "ratelimit" not in r.headers


async def test_throttle_429_with_ietf_headers_even_when_headers_none() -> None:
    gate = PulseGate(rate_limiting=True, rate_limit="3/minute", headers="none")
    app, calls = make_app(gate)
    async with client(app) as c:
        ok = [await c.get("/") for _ in range(3)]
        refused = await c.get("/")
    assert [r.status_code for r in ok] == [200] * 3
    assert ok[0].headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert ok[2].headers["ratelimit"].startswith('"default";r=0;')
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["ratelimit"] == '"default";r=0;t=60'
    assert "x-ml-optimization-applied" not in refused.headers  # headers="none"
    assert len(calls) == 3  # the app never saw the refused request
    assert gate.counters["throttled"] == 1
    assert gate.control.flush() == 4  # behaviour is folded in off the request path
    assert gate.control.limiter.behaviour.profiles["ip:127.0.0.1"].n == 4


async def test_throttle_marks_optimization_and_route_rules() -> None:
    gate = PulseGate(rate_limiting=True, rate_limit="100/minute",
                     rate_limit_routes={"/items/{id}": "1/minute"}, headers="safe")
    app, _ = make_app(gate)
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
        r = await c.get("/items/2")  # same route template, same bucket
        assert r.status_code == 429
        assert r.headers["x-ml-optimization-applied"] == "throttle"
        assert r.headers["ratelimit-policy"] == '"/items/{id}";q=1;w=60'
        assert (await c.get("/")).status_code == 200


async def test_costs_and_client_key_header() -> None:
    gate = PulseGate(rate_limiting=True, rate_limit="10/minute", rate_limit_costs={"/login": 6},
                     client_key="header:x-api-key")
    app, _ = make_app(gate)
    async with client(app) as c:
        assert (await c.post("/login", headers={"x-api-key": "k1"})).status_code == 200
        assert (await c.post("/login", headers={"x-api-key": "k1"})).status_code == 429
        assert (await c.post("/login", headers={"x-api-key": "k2"})).status_code == 200


async def test_shed_503_and_queued() -> None:
    hold = asyncio.Event()
    gate = PulseGate(resource_allocation=True, min_concurrency=1, max_concurrency=1,
                     initial_concurrency=1, max_queue_wait=0.0)
    app, _ = make_app(gate, hold)
    async with client(app) as c:
        first = asyncio.create_task(c.get("/slow/a"))
        await until(lambda: gate.control.allocator.inflight > 0)
        r = await c.get("/")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.headers["x-ml-optimization-applied"] == "shed"
        hold.set()
        assert (await first).status_code == 200
    assert gate.counters["shed"] == 1 and gate.control.allocator.inflight == 0


async def test_waiting_request_is_queued_then_served() -> None:
    hold = asyncio.Event()
    gate = PulseGate(resource_allocation=True, min_concurrency=1, max_concurrency=1,
                     initial_concurrency=1, max_queue_wait=10.0)
    app, _ = make_app(gate, hold)
    async with client(app) as c:
        first = asyncio.create_task(c.get("/slow/a"))
        await until(lambda: gate.control.allocator.inflight > 0)
        second = asyncio.create_task(c.get("/"))
        await until(lambda: gate.control.allocator.queued > 0)
        hold.set()
        r1, r2 = await first, await second
    assert r1.headers["x-ml-optimization-applied"] == "none"
    assert r2.status_code == 200 and r2.headers["x-ml-optimization-applied"] == "queued"


async def test_low_priority_shed_while_high_admitted_and_header_trust() -> None:
    hold = asyncio.Event()
    gate = PulseGate(resource_allocation=True, min_concurrency=4, max_concurrency=4,
                     initial_concurrency=4, max_queue_wait=0.0,
                     priority_rules={"/low*": "low", "/slow/{name}": "normal"},
                     priority_header="x-priority")
    app, _ = make_app(gate, hold)
    async with client(app) as c:
        held = [asyncio.create_task(c.get(f"/slow/{i}")) for i in range(3)]
        await until(lambda: gate.control.allocator.inflight >= 3)
        low = await c.get("/low/report")  # low may fill 3 of 4 slots: shed
        assert low.status_code == 503
        high = asyncio.create_task(c.get("/slow/x", headers={"x-priority": "high"}))
        await until(lambda: gate.control.allocator.inflight >= 4)
        hold.set()
        assert (await high).status_code == 200
        for t in held:
            assert (await t).status_code == 200
    assert gate.control.allocator.shed == [0, 0, 1]
    assert gate.control.allocator.admitted[0] == 1


async def test_priority_header_ignored_unless_configured() -> None:
    gate = PulseGate(resource_allocation=True, priority_rules={"/low*": "low"})
    app, _ = make_app(gate)
    async with client(app) as c:
        await c.get("/low/report", headers={"x-priority": "high"})
    assert gate.control.allocator.admitted == [0, 0, 1]


async def test_ticket_released_when_app_raises() -> None:
    gate = PulseGate(resource_allocation=True, rate_limiting=True)
    app, _ = make_app(gate)
    async with client(app) as c:
        try:
            await c.get("/boom")
        except RuntimeError:
            pass
    assert gate.control.allocator.inflight == 0
    assert gate.control.allocator.admitted == [0, 1, 0]


def test_sync_admit_and_fail_open() -> None:
    from pulsegate.records import RequestInfo

    gate = PulseGate(rate_limiting=True, rate_limit="1/minute", resource_allocation=True)
    ctx = gate.begin(RequestInfo("GET", "/", "/", "10.0.0.1"))
    assert ctx is not None and gate.admit(ctx) is None and ctx.ticket is not None
    gate.finish(ctx, status=200)
    assert gate.control.allocator.inflight == 0
    ctx = gate.begin(RequestInfo("GET", "/", "/", "10.0.0.1"))
    assert ctx is not None
    rej = gate.admit(ctx)
    assert rej is not None and rej.status == 429 and ctx.optimization == "throttle"
    gate.finish(ctx, status=429)

    def broken(_: Any) -> None:
        raise RuntimeError("key func failed")

    gate.control.keys = broken
    ctx = gate.begin(RequestInfo("GET", "/", "/", "10.0.0.1"))
    assert ctx is not None and gate.admit(ctx) is None  # fail open
    assert gate.stats()["internal_errors_by_kind"].get("admit:RuntimeError") == 1
    gate.finish(ctx, status=200)


async def test_stats_report_limiter_and_allocator() -> None:
    gate = PulseGate(rate_limiting=True, resource_allocation=True, rate_limit="1/minute")
    app, _ = make_app(gate)
    async with client(app) as c:
        await c.get("/")
        await c.get("/")
    s = gate.stats()["control"]
    assert s["ratelimit"]["allowed"] == 1 and s["ratelimit"]["throttled"] == 1
    assert s["allocator"]["admitted"]["normal"] == 1 and s["allocator"]["inflight"] == 0


async def test_behaviour_is_folded_in_by_the_scheduler_job() -> None:
    import time

    gate = PulseGate(rate_limiting=True, rate_limit="100/minute")
    app, _ = make_app(gate)
    async with client(app) as c:
        for _ in range(3):
            await c.get("/")
    gate.scheduler.stop()  # drive the job by hand, deterministically
    assert len(gate.control.pending) <= 3
    gate.scheduler.run_pending(time.monotonic() + 10)
    assert not gate.control.pending
    assert gate.control.limiter.behaviour.profiles["ip:127.0.0.1"].n == 3


def test_pressure_sampler_reads_memory_and_cpu() -> None:
    gate = PulseGate(resource_allocation=True, max_memory_mb=1.0)  # any process exceeds 1 MiB
    gate.scheduler.stop()
    gate.control.sample_pressure()
    assert gate.control._pressure > 1.0
    calm = PulseGate(resource_allocation=True, max_memory_mb=1e9)
    calm.scheduler.stop()
    calm.control.sample_pressure()
    assert calm.control._pressure < 1.0
    assert "control.pressure" in calm.scheduler.jobs


def test_auto_target_latency_is_on_by_default_capped_by_the_target_and_can_be_turned_off() -> None:
    gate = PulseGate(resource_allocation=True, target_latency_ms=50)
    a = gate.control.allocator
    assert a is not None and a.auto_target and a.target_cap == 0.05
    off = PulseGate(resource_allocation=True, auto_target_latency=False)
    assert not off.control.allocator.auto_target  # type: ignore[union-attr]


async def test_pending_entries_hold_digests_not_the_request_strings() -> None:
    # Issue 18: an entry waiting for the 0.5 s job is fixed-size whatever the User-Agent
    # and query string a client sends; the profile it makes is the same as from strings.
    import time

    from pulsegate.control.ratelimit import AdaptiveRateLimiter

    gate = PulseGate(rate_limiting=True, rate_limit="100/minute")
    app, _ = make_app(gate)
    agents = ["UA-" + "a" * 5000, "UA-" + "b" * 5000, "UA-" + "a" * 5000]
    queries = ["q=" + "x" * 5000, "q=" + "y" * 5000, "q=" + "y" * 5000]
    async with client(app) as c:
        for ua, q in zip(agents, queries, strict=True):
            await c.get(f"/items/1?{q}", headers={"user-agent": ua})
    gate.scheduler.stop()
    pending = list(gate.control.pending)
    assert len(pending) == 3
    for entry in pending:
        strings = [x for x in entry if isinstance(x, str)]
        assert strings == ["ip:127.0.0.1"]  # the client key only
        assert all(len(str(x)) < 32 for x in entry[2:])
    mirror = AdaptiveRateLimiter("100/minute")
    for (key, record, _, _), ua, q in zip(pending, agents, queries, strict=True):
        mirror.observe(key, record, ua, q, now=record.started_at)
    gate.scheduler.run_pending(time.monotonic() + 10)
    got = gate.control.limiter.behaviour.profiles["ip:127.0.0.1"]
    want = mirror.behaviour.profiles["ip:127.0.0.1"]
    assert (got.n, got.ua, got.param, got.div) == (want.n, want.ua, want.param, want.div)
    assert got.ua > 0 and got.param > 0  # the changes were seen through the digests
