"""Attack probes on the response cache through the real ASGI middleware: what a client
chooses (header names, paths) leaves only bounded state behind."""

from __future__ import annotations

from cache_shop import Shop


def cached(response: object) -> bool:
    return response.headers.get("x-ml-optimization-applied") == "cache"  # type: ignore[attr-defined]


async def test_refusal_reasons_keep_no_request_sized_header_names() -> None:
    """A header the cache does not understand refuses the request, and its name is the
    reason counted (gate.stats(), the dashboard, the persisted report). Each request
    here names a different 4 000-character header: 64 reasons at most (held before),
    each now cut at 80 characters (kept whole before: 64 x 4 kB)."""
    shop = Shop()
    for i in range(100):
        r = await shop.get("/items/1", headers={f"x-{i:03d}-" + "n" * 4_000: "v"})
        assert r.status_code == 200 and r.text == "item apple"
    refused = shop.gate.stats()["response_cache"]["refused"]
    assert sum(refused.values()) == 100 and len(refused) <= 64 + 1  # + "(other reasons)"
    assert max(len(k) for k in refused) <= 83, max(len(k) for k in refused)
    assert "request x-000-nnn" in next(iter(refused))


async def test_many_unmatched_paths_do_not_evict_what_a_route_learnt() -> None:
    """Attack probe: under an allowed prefix, 1 100 requests to distinct paths no route
    matches (404s, each its own raw-path learner). They shared one map of MAX_ROUTES
    learners with the named routes, inserted in order: the route's learner was evicted,
    its entry dropped, and /items/1 no longer served from the cache. Raw paths now
    have a map of their own."""
    from pulsegate.respcache.cache import MAX_ROUTES

    shop = Shop(response_cache_routes=["/items*"])
    await shop.learn("/items/1")
    assert cached(await shop.get("/items/1"))
    for i in range(MAX_ROUTES + 100):
        assert (await shop.client.get(f"/items/1/x{i}")).status_code == 404
    assert all([cached(await shop.get("/items/1")) for _ in range(3)])
    report = shop.gate.stats()["response_cache"]
    assert report["refused"] == {"response status": MAX_ROUTES + 100} and report["entries"] == 1



def test_a_streamed_wsgi_body_reaches_the_server_chunk_by_chunk_and_is_still_learnt() -> None:
    """Attack probe (streaming bodies pass through untouched): a WSGI app streaming a
    body (server-sent events, a long export) on a cached route. The capture read the
    body ahead up to response_cache_max_body before handing anything to the server: the
    client waited for the whole stream (or 1 MiB of it). Now each chunk goes on as the
    app yields it, and a body that ends within max_body is learnt and served as before."""
    from typing import Any

    from fakeclock import FakeClock
    from pulsegate.engine import PulseGate
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    produced: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events() -> Any:
            for i in range(5):
                produced.append(i)
                yield b"data: %d\n\n" % i
        return events()

    clock = FakeClock()
    gate = PulseGate(clock=clock, response_cache=True, response_cache_min_saving_ms=0.0,
                     response_cache_routes=["/events"])
    wrapped = PulseGateWSGIMiddleware(app, gate=gate)
    served = []
    started: list[Any] = []
    for _ in range(15):
        clock.t += 0.1
        produced.clear()
        body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/events"},
                       lambda status, headers, *exc: started.append(headers))
        chunks = iter(body)
        first = next(chunks)
        if not any(k == "x-ml-optimization-applied" and v == "cache" for k, v in started[-1]):
            assert first == b"data: 0\n\n" and produced == [0]  # the rest not made yet
        assert first + b"".join(chunks) == b"".join(b"data: %d\n\n" % i for i in range(5))
        getattr(body, "close", lambda: None)()
        served.append(produced == [])
    assert served[-1] and gate.stats()["response_cache"]["stored"] >= 1


def test_without_a_router_a_path_in_use_is_not_evicted_by_a_spray_of_new_paths() -> None:
    """Attack probe: an app with no route resolver (plain WSGI) learns each path apart.
    Its learners were evicted in insertion order however often used: 500 requests to
    new paths between two to a learnt page and the page's learner was gone after two
    rounds, its entry dropped. A learner in use is now the most recent one."""
    from typing import Any

    from fakeclock import FakeClock
    from pulsegate.engine import PulseGate
    from pulsegate.respcache.cache import MAX_ROUTES
    from pulsegate.wsgi import PulseGateWSGIMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page " + environ["PATH_INFO"].encode()]

    clock = FakeClock()
    gate = PulseGate(clock=clock, response_cache=True, response_cache_min_saving_ms=0.0,
                     response_cache_routes=["/*"])
    wrapped = PulseGateWSGIMiddleware(app, gate=gate)
    started: list[Any] = []

    def get(path: str) -> bool:
        clock.t += 0.01
        body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": path},
                       lambda status, headers, *exc: started.append(headers))
        assert b"".join(body) == b"page " + path.encode()
        return ("x-ml-optimization-applied", "cache") in started[-1]

    for _ in range(15):
        get("/page")
    served = []
    for round_ in range(3 * MAX_ROUTES // 500):
        for i in range(500):
            get(f"/new/{round_}/{i}")
        served.append(get("/page"))
    assert served.count(False) <= 1, served  # (one hit in 20 is an audit, by the app)
