"""Attack probes on the response cache through the real ASGI middleware: what a client
chooses (header names, paths) leaves only bounded state behind."""

from __future__ import annotations

from cache_shop import Shop


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
