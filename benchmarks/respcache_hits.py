"""The learned response cache on a reference app: hit rate, latency saved, and the two
promises checked on every response (never another user's body, never a body older
than the last write).

    .venv/bin/python benchmarks/respcache_hits.py [--requests 3000] [--rounds 2] [--seed 1]
        [--invalidate route|all|path] [--writes 0.05] [--storage redis://127.0.0.1:6379/0]

The app (Starlette behind the real ASGI middleware, in-process through httpx): a
catalogue of 5000 products in SQLite (in memory); ``GET /items/{id}`` reads a product
and the 20 cheapest of its category (a filter on an unindexed column: ~1 ms of real
work), ``GET /me`` greets the caller named by ``Authorization``, ``GET /search?q=``
answers a query never repeated, ``PUT /items/{id}`` changes a product's price. The
workload (seeded): 80 % item reads with Zipf(1.1) popularity over 200 products, 10 %
``/me`` from 20 users, 5 % unique searches, 5 % writes (``--writes``; what it
takes from the searches). The same sequence runs with
the cache off and on, alternately, ``--rounds`` times; latency is the client's
(``perf_counter`` around each request), paired in the same run.

Options: all three routes allow-listed, ``response_cache_vary`` with
``authorization``, ``response_cache_invalidate`` by ``--invalidate`` (see INVALIDATE),
``response_cache_storage`` by ``--storage`` (memory, or a Redis: each run its own key
prefix; the look-up is one round trip, puts go through the store's writer thread).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import time
import uuid
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate

PRODUCTS = 5000
HOT = 200
USERS = 20
CACHE: dict[str, Any] = {"response_cache": True,
         "response_cache_routes": ["/items/{id}", "/me", "/search"],
         "response_cache_vary": ["accept", "authorization"]}
#: ``--invalidate``: what a PUT invalidates. ``route`` (every item page: right, since a
#: page lists the cheapest of its category), ``all`` (the default of the option: the
#: whole cache), ``path`` (only the written page: WRONG for this app, on purpose -- the
#: audits are what limits the stale pages then).
INVALIDATE = {"route": {"PUT /items/{id}": ["/items/{id}"]}, "all": {},
              "path": {"PUT /items/{id}": ["$path"]}}


def catalogue() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE product (id INTEGER PRIMARY KEY, category INTEGER, "
               "name TEXT, price REAL)")
    rng = random.Random(7)
    db.executemany("INSERT INTO product VALUES (?, ?, ?, ?)",
                   [(i, i % 50, f"product {i}", round(rng.uniform(1, 500), 2))
                    for i in range(PRODUCTS)])
    return db


def item_body(db: sqlite3.Connection, pid: int) -> dict[str, Any]:
    row = db.execute("SELECT id, category, name, price FROM product WHERE id = ?",
                     (pid,)).fetchone()
    cheapest = db.execute("SELECT id, price FROM product WHERE category = ? "
                          "ORDER BY price LIMIT 20", (row[1],)).fetchall()
    return {"id": row[0], "name": row[2], "price": row[3], "cheapest": cheapest}


def build(cache: bool, invalidate: str,
          storage: str) -> tuple[httpx.AsyncClient, PulseGate, sqlite3.Connection]:
    db = catalogue()

    async def item(request: Request) -> Response:
        return JSONResponse(item_body(db, int(request.path_params["id"])))

    async def put_item(request: Request) -> Response:
        db.execute("UPDATE product SET price = ? WHERE id = ?",
                   (float((await request.body()).decode()), int(request.path_params["id"])))
        return PlainTextResponse("ok")

    async def me(request: Request) -> Response:
        return PlainTextResponse(f"hello {request.headers.get('authorization')}")

    async def search(request: Request) -> Response:
        q = request.query_params.get("q", "")
        return JSONResponse(db.execute("SELECT id FROM product WHERE name LIKE ? LIMIT 5",
                                       (f"%{q}%",)).fetchall())

    app = Starlette(routes=[Route("/items/{id}", item, methods=["GET"]),
                            Route("/items/{id}", put_item, methods=["PUT"]),
                            Route("/me", me), Route("/search", search)])
    shared = {"response_cache_storage": storage,
              "response_cache_key_prefix": f"bench{uuid.uuid4().hex[:12]}"}
    gate = PulseGate(**({**CACHE, "response_cache_invalidate": INVALIDATE[invalidate],
                         **(shared if storage != "memory://" else {})} if cache else {}))
    app.add_middleware(PulseGateMiddleware, gate=gate)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t"), gate, db


def workload(n: int, seed: int, writes: float) -> list[tuple[str, str, Any]]:
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 1.1 for k in range(HOT)]
    out: list[tuple[str, str, Any]] = []
    for i in range(n):
        u = rng.random()
        if u < 0.80:
            out.append(("GET", f"/items/{rng.choices(range(HOT), weights)[0]}", None))
        elif u < 0.90:
            out.append(("GET", "/me", f"user-{rng.randrange(USERS)}"))
        elif u < 1.0 - writes:
            out.append(("GET", f"/search?q={i}", None))
        else:
            out.append(("PUT", f"/items/{rng.choices(range(HOT), weights)[0]}",
                        f"{rng.uniform(1, 500):.2f}"))
    return out


async def run(cache: bool, plan: list[tuple[str, str, Any]], invalidate: str,
              storage: str) -> dict[str, Any]:
    client, gate, db = build(cache, invalidate, storage)
    lat: list[float] = []
    stale = cross = served = 0
    for method, path, arg in plan:
        t0 = time.perf_counter()
        if method == "PUT":
            await client.put(path, content=arg.encode())
            lat.append(time.perf_counter() - t0)
            continue
        headers = {"authorization": arg} if arg else {}
        r = await client.get(path, headers=headers)
        lat.append(time.perf_counter() - t0)
        hit = r.headers.get("x-ml-optimization-applied") == "cache"
        served += hit
        if path.startswith("/items/") and r.json() != _jsonish(
                item_body(db, int(path.rsplit("/", 1)[1]))):
            stale += 1
        if path == "/me" and r.text != f"hello {arg}":
            cross += 1
    stats = gate.stats().get("response_cache", {})
    return {"mean_ms": 1000 * statistics.fmean(lat), "median_ms": 1000 * statistics.median(lat),
            "hits": served, "stale": stale, "cross": cross, "stats": stats}


def _jsonish(body: dict[str, Any]) -> Any:
    return {**body, "cheapest": [list(r) for r in body["cheapest"]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--invalidate", choices=list(INVALIDATE), default="route")
    ap.add_argument("--writes", type=float, default=0.05, help="share of PUTs (< 0.1)")
    ap.add_argument("--storage", default="memory://", help="response_cache_storage")
    args = ap.parse_args()
    plan = workload(args.requests, args.seed, args.writes)
    gets = sum(m == "GET" for m, _, _ in plan)
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for cache in (False, True):
            rows[cache].append(asyncio.run(run(cache, plan, args.invalidate, args.storage)))
    off, on = rows[False], rows[True]
    mean_off = statistics.fmean(r["mean_ms"] for r in off)
    mean_on = statistics.fmean(r["mean_ms"] for r in on)
    last = on[-1]
    st = last["stats"]
    print(f"{args.requests} requests ({gets} GETs), seed {args.seed}, {args.rounds} rounds "
          f"off/on alternated, --invalidate {args.invalidate}, --writes {args.writes}, "
          f"--storage {args.storage}")
    print("| cache | mean ms | median ms | served from cache | stale bodies | other user's |")
    print("|---|---|---|---|---|---|")
    for name, rs in (("off", off), ("on", on)):
        print(f"| {name} | {statistics.fmean(r['mean_ms'] for r in rs):.3f} | "
              f"{statistics.fmean(r['median_ms'] for r in rs):.3f} | "
              f"{statistics.fmean(r['hits'] for r in rs):.0f} | "
              f"{sum(r['stale'] for r in rs)} | {sum(r['cross'] for r in rs)} |")
    print(f"mean latency on/off: {mean_on / mean_off:.3f}")
    print(f"hit rate {st.get('hit_rate')} over cacheable look-ups; hits {st.get('hits')}, "
          f"stale hits {st.get('stale_hits')}, misses {st.get('misses')}; saved_ms (stats) "
          f"{st.get('saved_ms')} vs measured {(mean_off - mean_on) * args.requests:.0f}; "
          f"audits {st.get('audits')}, invalidated {st.get('invalidated')}, "
          f"refused {st.get('refused')}, entries {st.get('entries')}, bytes {st.get('bytes')}")


if __name__ == "__main__":
    main()
