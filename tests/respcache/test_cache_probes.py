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

