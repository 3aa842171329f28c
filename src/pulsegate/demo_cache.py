"""The demo's response cache (issue 22 item 4, docs/response-cache.md).

``GET /catalog/{page}`` renders a catalog page in 8 ms, the same for every client, and
is allow-listed; the cache learns that it repeats and serves it. The demo's clients
send ``x-api-key`` -- a header that looks like a credential, so the cache refuses such
requests unless the key is named in ``response_cache_vary`` (fail-closed): here it is,
and each client has entries of its own. An editor writes a page once a second
(``PUT /catalog/{page}``, invalidating that path) and reads it back as another client:
the report counts the reads older than the write (the promise: none).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from pulsegate.engine import PulseGate

#: merged into the demo's configuration
CACHE_CONFIG: dict[str, Any] = {
    "response_cache": True, "response_cache_routes": ["/catalog/{page}"],
    "response_cache_vary": ["accept", "accept-encoding", "x-api-key"],
    "response_cache_invalidate": {"PUT /catalog/{page}": ["$path"]},
}
#: Pages in the catalog (the traffic's ``{page}``).
PAGES = 10


def new_checks() -> Any:
    """The editor's tally (in the demo's ``state["catalog"]``)."""
    return {"reads": 0, "stale": 0, "cached": 0, "refused": 0}


async def editor(client: httpx.AsyncClient, deadline: float, state: dict[str, Any]) -> None:
    """Write a page once a second, then read it as a regular client: older than the
    write counts in ``state["catalog"]["stale"]``."""
    checks = state["catalog"]
    rng = random.Random(7)
    version = 0
    await asyncio.sleep(2.0)
    while time.monotonic() < deadline - 0.5:
        page, version = rng.randint(1, PAGES), version + 1
        w = await client.put(f"/catalog/{page}", json={"version": version},
                             headers={"x-api-key": "editor"})
        r = await client.get(f"/catalog/{page}", headers={"x-api-key": "user-0"})
        if w.status_code != 200 or r.status_code != 200:
            # A write the allocator shed (503) or the limiter refused (429) changed
            # nothing: the page is rightly still older than it. Counted apart.
            checks["refused"] += 1
            await asyncio.sleep(1.0)
            continue
        checks["reads"] += 1
        checks["stale"] += int(r.json()["version"] < version)
        checks["cached"] += int(r.headers.get("x-ml-optimization-applied") == "cache")
        await asyncio.sleep(1.0)


def cache_lines(gate: PulseGate, state: dict[str, Any]) -> list[str]:
    """The hit rate, the time saved, each route's learnt figures and the write check."""
    checks = state["catalog"]
    cache = gate.control.cache if gate.control is not None else None
    if cache is None:
        return []
    s = cache.stats()
    lines = [f"response cache: hit rate {s['hit_rate']:.2f} ({s['hits']} hits, "
             f"{s['stale_hits']} stale, {s['misses']} misses), {s['saved_ms']:.0f} ms of app "
             f"time saved, {sum(s['invalidations'].values())} invalidations by writes, "
             f"{sum(s['refused'].values())} requests refused by its rules"]
    lines += [f"  {r['endpoint']}: {'served from the cache' if r['serving'] else 'not served'}"
              f", confidence {r['confidence']:.2f}, repeat share {r['repeat_share']:.2f}, "
              f"app {r['latency_ms']:.1f} ms, {r['hits']} hits, {r['audits']} audits "
              f"(x-ml-optimization-applied: cache)" for r in cache.report()["routes"]]
    lines.append(f"  {checks['reads']} reads right after a write, as another client: "
                 f"{checks['stale']} older than the write ({checks['refused']} writes or reads "
                 f"refused by the allocator or the limiter, not counted)")
    return lines
