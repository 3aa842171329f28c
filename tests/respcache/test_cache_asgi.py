"""The learned response cache through the real ASGI middleware (Starlette, in-process,
injected clock): it serves what it learnt repeats, never across users, never after a
write the app signals, never what is unsafe to cache, and fails open."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cache_shop import Shop
from credential_names import generated
from test_rules import UNWORDED

from pulsegate import ConfigError, cli
from pulsegate.config import Config
from pulsegate.engine import PulseGate
from pulsegate.respcache import invalidate

CACHE = ("x-ml-optimization-applied", "cache")


def cached(response: object) -> bool:
    return response.headers.get("x-ml-optimization-applied") == "cache"  # type: ignore[attr-defined]


async def test_a_route_answering_identically_is_served_from_the_cache_once_learnt() -> None:
    shop = Shop()
    first = await shop.get("/items/1")
    assert not cached(first) and first.text == "item apple"
    await shop.learn("/items/1")
    produced = shop.calls["item"]
    before = shop.gate.stats()["response_cache"]
    hits = 0
    for _ in range(20):
        r = await shop.get("/items/1")
        assert r.status_code == 200 and r.text == "item apple"
        if cached(r):
            hits += 1
            assert r.headers["content-type"] == first.headers["content-type"]
            assert int(r.headers["content-length"]) == len("item apple")
    stats = shop.gate.stats()["response_cache"]
    audits = stats["audits"] - before["audits"]
    assert hits == 19 and audits == 1  # one hit in 20 is checked against the app
    assert shop.calls["item"] == produced + audits  # the app ran for the audit only
    assert stats["hits"] - before["hits"] == 19 and stats["hit_rate"] > 0.5
    assert stats["saved_ms"] - before["saved_ms"] == pytest.approx(19 * 5.0, rel=0.01)


async def test_a_head_is_answered_from_the_gets_entry_without_a_body() -> None:
    shop = Shop()
    for _ in range(15):  # HEADs teach nothing: the route is not learnt from them
        r = await shop.client.head("/items/1")
        assert r.status_code == 200 and not cached(r) and r.content == b""
    assert shop.calls["item"] == 15 and shop.gate.stats()["response_cache"]["stored"] == 0
    await shop.learn("/items/1")
    produced = shop.calls["item"]
    for _ in range(30):  # (never audited: a HEAD has no body to compare)
        r = await shop.client.head("/items/1")
        assert cached(r) and r.content == b""
        assert int(r.headers["content-length"]) == len("item apple")
        assert r.headers["content-type"].startswith("text/plain")
    assert shop.calls["item"] == produced
    await shop.client.put("/items/1", content=b"quince")
    r = await shop.client.head("/items/1")
    assert not cached(r) and shop.calls["item"] == produced + 1
    assert int(r.headers["content-length"]) == len("item quince")
    # a HEAD with a credential-like header is the app's, as a GET would be
    await shop.learn("/items/1")
    assert not cached(await shop.client.head("/items/1", headers={"x-session-token": "t"}))


async def test_hits_are_counted_but_not_learnt_by_the_endpoints_latency_model() -> None:
    shop = Shop()
    await shop.learn("/items/1")
    model = shop.gate.baselines.peek("GET /items/{id}")
    assert model is not None
    learnt, requests = model.n, shop.gate.counters["requests"]
    hits = sum([cached(await shop.get("/items/1")) for _ in range(40)])
    assert hits >= 38 and shop.gate.stats()["response_cache"]["hits"] >= hits
    # the hits' microseconds are the cache's, not the route's: only the audits are learnt
    assert model.n == learnt + (40 - hits)
    assert shop.gate.counters["requests"] == requests + 40


async def test_audits_notice_a_route_that_changed_behind_the_caches_back() -> None:
    shop = Shop()
    await shop.learn("/items/1")
    shop.items["1"] = "damson"  # a write the gate never sees
    answers = [(await shop.get("/items/1")).text for _ in range(25)]
    changed = answers.index("item damson")  # the first audit after the change ...
    assert changed < 20 and set(answers[changed:]) == {"item damson"}  # ... and no stale one
    routes = {r["endpoint"]: r for r in shop.gate.control.cache.report()["routes"]}
    assert routes["GET /items/{id}"]["confidence"] < 0.9
    # another key of the route is learnt on its own: its first answer is the app's
    assert not cached(await shop.get("/items/2"))


async def test_a_route_whose_bodies_vary_is_never_served_from_the_cache() -> None:
    shop = Shop()
    for i in range(40):
        r = await shop.get("/random")
        assert not cached(r) and r.text == f"n={i + 1}"
    assert shop.gate.stats()["response_cache"]["hits"] == 0


async def test_requests_with_credentials_are_never_cached_unless_configured() -> None:
    shop = Shop()
    for i in range(30):
        user = "alice" if i % 2 else "bob"
        r = await shop.get("/me", headers={"authorization": f"Bearer {user}"})
        assert not cached(r) and r.text == f"hello Bearer {user}"
        r = await shop.get("/me", cookies={"session": user})
        assert not cached(r) and r.text == f"hello {user}"
    assert shop.calls["me"] == 60
    refused = shop.gate.stats()["response_cache"]["refused"]
    assert refused == {"request authorization": 30, "request cookie": 30}


async def test_an_app_knowing_users_by_a_header_the_cache_does_not_know_shares_nothing() -> None:
    # (fail-closed: X-Session-Token, X-Forwarded-User ... look like credentials, and
    # X-Ticket, X-Who ... are headers the cache does not know)
    names = [*generated(30, seed=7), "X-Session-Token", "X-Forwarded-User", "X-Hasura-User-Id",
             *UNWORDED]
    shop = Shop()
    for name in names:  # alice long enough to be learnt, then bob: his own page
        for user in ["alice"] * 14 + ["bob"] * 3:
            r = await shop.get("/me", headers={name: user})
            assert not cached(r) and r.text == f"hello {user}"
    assert shop.calls["me"] == 17 * len(names)
    stats = shop.gate.stats()["response_cache"]
    assert stats["hits"] == stats["stored"] == 0
    assert sum(stats["refused"].values()) == 17 * len(names)


async def test_a_header_named_in_ignore_is_cached_unkeyed() -> None:
    shop = Shop(response_cache_ignore=["x-request-uuid"])
    await shop.learn("/items/1", headers={"x-request-uuid": "a1"})
    r = await shop.get("/items/1", headers={"x-request-uuid": "b2"})
    assert cached(r) and r.text == "item apple"
    r = await shop.get("/items/1", headers={"x-request-uuid": "b2", "x-ticket": "t"})
    assert not cached(r)  # (any other unknown header still refuses it)


async def test_a_forged_host_only_ever_gets_and_poisons_its_own_entry() -> None:
    shop = Shop()
    await shop.learn("/link", headers={"host": "shop.example"})
    for header in ("host", "x-forwarded-host"):
        # an attacker's request: its page links to its host, and is never served to others
        forged = {"host": "shop.example", header: "evil.example"}
        for _ in range(15):
            r = await shop.get("/link", headers=forged)
            assert "evil.example" in r.text
        for _ in range(5):
            r = await shop.get("/link", headers={"host": "shop.example"})
            assert r.text == "see http://shop.example/link"
            assert cached(r) or shop.gate.stats()["response_cache"]["audits"] > 0


async def test_refusals_by_header_name_are_counted_in_bounded_memory() -> None:
    shop = Shop()
    for name in generated(300, seed=3):
        await shop.get("/items/1", headers={name: "v"})
    refused = shop.gate.stats()["response_cache"]["refused"]
    assert len(refused) <= 64 + 1 and sum(refused.values()) == 300


@pytest.mark.parametrize("header", ["authorization", "x-session-token"])
async def test_with_a_credential_in_vary_each_user_gets_only_their_own_entry(header: str) -> None:
    shop = Shop(response_cache_vary=[header])
    users = ["alice", "bob", "carol"]
    for _ in range(15):
        for user in users:
            await shop.get("/me", headers={header: user})
    hits = 0
    for _ in range(10):
        for user in users:
            r = await shop.get("/me", headers={header: user})
            assert r.text == f"hello {user}"
            hits += cached(r)
    assert hits >= 28  # (one in 20 is an audit, answered by the app)
    # a user never seen is answered by the app, not from anyone's entry
    r = await shop.get("/me", headers={header: "mallory"})
    assert not cached(r) and r.text == "hello mallory"
    # and so is a request without credentials
    r = await shop.get("/me")
    assert not cached(r) and r.text == "hello None"
    # another credential-like header beside the keyed one: not cached at all
    r = await shop.get("/me", headers={header: "alice", "x-api-key": "k"})
    assert not cached(r) and r.text.startswith("hello alice")


async def test_a_write_the_app_signals_invalidates_before_the_next_read() -> None:
    shop = Shop()
    await shop.learn("/items/1")
    assert cached(await shop.get("/items/1"))
    assert (await shop.client.put("/items/1", content=b"banana")).text == "ok"
    r = await shop.get("/items/1")
    assert not cached(r) and r.text == "item banana"
    stats = shop.gate.stats()["response_cache"]
    assert stats["invalidations"]["writes"] == 2  # when admitted and when finished


async def test_a_response_produced_while_a_write_was_in_flight_is_never_stored() -> None:
    shop = Shop()
    await shop.learn("/items/1")
    invalidate("/items*")  # the next GET is produced by the app ...

    async def write() -> None:  # ... and, while it runs, another request writes
        await shop.client.put("/items/1", content=b"cherry")

    shop.during = write
    r = await shop.get("/items/1")
    assert not cached(r) and r.text == "item apple"  # read before the write: stale
    r = await shop.get("/items/1")
    assert not cached(r) and r.text == "item cherry"  # never the stale one
    assert shop.gate.stats()["response_cache"]["discarded"] >= 1


async def test_configured_invalidation_rules_drop_only_what_they_name() -> None:
    shop = Shop(response_cache_invalidate={"PUT /items/{id}": ["/items*"]})
    await shop.learn("/items/1")
    await shop.learn("/random", 2)
    shop.items["1"] = "plum"  # changed behind the gate's back ...
    assert (await shop.get("/items/1")).text == "item apple"  # ... so still cached
    assert invalidate("GET /items/{id}") >= 1  # (every cache of the process)
    assert (await shop.get("/items/1")).text == "item plum"


async def test_writes_to_other_paths_do_not_stop_a_route_being_learnt() -> None:
    shop = Shop(response_cache_invalidate={"PUT /items/{id}": ["$path"]})
    for i in range(14):  # each read of /items/1 follows a write to /items/2
        await shop.client.put("/items/2", content=f"pear{i}".encode())
        r = await shop.get("/items/1")
        assert r.text == "item apple"
    assert cached(await shop.get("/items/1"))
    # a write to /items/1 itself: its next body is not compared with the last
    await shop.client.put("/items/1", content=b"apricot")
    r = await shop.get("/items/1")
    assert not cached(r) and r.text == "item apricot"
    routes = {r["endpoint"]: r for r in shop.gate.control.cache.report()["routes"]}
    assert routes["GET /items/{id}"]["confidence"] > 0.9  # (the change was expected)


async def test_a_write_can_invalidate_only_its_own_path() -> None:
    shop = Shop(response_cache_invalidate={"PUT /items/{id}": ["$path"]})
    await shop.learn("/items/1")
    await shop.learn("/items/2")
    await shop.client.put("/items/1", content=b"quince")
    r1, r2 = await shop.get("/items/1"), await shop.get("/items/2")
    assert not cached(r1) and r1.text == "item quince"
    assert cached(r2) and r2.text == "item pear"


def test_the_dashboard_report_lists_each_route_learnt() -> None:
    import asyncio

    from pulsegate.export.dashboard.api import reports

    shop = Shop()
    asyncio.run(shop.learn("/items/1"))
    asyncio.run(shop.learn("/random"))
    report = reports(shop.gate)["response_cache"]
    routes = {r["endpoint"]: r for r in report["routes"]}
    assert routes["GET /items/{id}"]["serving"] and routes["GET /items/{id}"]["hits"] >= 1
    assert not routes["GET /random"]["serving"]
    assert routes["GET /random"]["confidence"] < 0.5


@pytest.mark.parametrize("path", ["/cookie", "/private", "/big", "/missing"])
async def test_unsafe_responses_are_never_served_from_the_cache(path: str) -> None:
    shop = Shop(response_cache_max_body=4096)
    for _ in range(30):
        assert not cached(await shop.get(path))
    assert shop.calls[path.strip("/")] == 30
    assert shop.gate.stats()["response_cache"]["entries"] == 0


async def test_stale_while_revalidate_one_request_refreshes_the_others_get_the_stale_copy(
) -> None:
    shop = Shop(response_cache_ttl=5, response_cache_stale_seconds=10)
    await shop.learn("/items/1")
    shop.items["1"] = "fig"
    shop.clock.t += 6  # past freshness, within the stale window
    stale_answers: list[str] = []

    async def another_reader() -> None:
        r = await shop.client.get("/items/1")
        assert cached(r)
        stale_answers.append(r.text)

    shop.during = another_reader
    refresher = await shop.get("/items/1")
    assert not cached(refresher) and refresher.text == "item fig"
    assert stale_answers == ["item apple"]
    r = await shop.get("/items/1")  # the refreshed copy is stored
    assert cached(r) and r.text == "item fig"
    shop.clock.t += 30  # past the stale window: the app answers
    assert not cached(await shop.get("/items/1"))


async def test_a_cache_fault_serves_the_apps_response(monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Shop()
    cache = shop.gate.control.cache

    def broken(*args: object) -> None:
        raise RuntimeError("store down")

    monkeypatch.setattr(cache.store, "put", broken)
    for _ in range(20):
        r = await shop.get("/items/1")
        assert r.status_code == 200 and r.text == "item apple" and not cached(r)
    assert shop.gate.faults.by_kind.get("respcache.learn:RuntimeError", 0) >= 1


def test_off_by_default_and_no_controller_is_built() -> None:
    assert PulseGate().control is None
    assert "response_cache" not in PulseGate().stats()


@pytest.mark.parametrize(("key", "value"), [
    ("response_cache_routes", ["items"]), ("response_cache_ttl", 0),
    ("response_cache_prediction_threshold", 1.5), ("response_cache_vary", ["bad header"]),
    ("response_cache_invalidate", {"POST /x": ["nope"]}), ("response_cache_max_body", 0),
    ("response_cache_invalidate", {"$path": ["/x*"]}),
    ("response_cache", "maybe")])
def test_bad_options_name_key_value_and_allowed(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{key: value})
    assert info.value.key.startswith(key) and "allowed:" in str(info.value)


async def test_report_shows_the_cache_after_the_process_is_gone(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shop = Shop(state_dir=str(tmp_path))
    try:
        await shop.learn("/items/1")
        hits = sum([cached(await shop.get("/items/1")) for _ in range(10)])
        shop.gate.ops.snapshot()
    finally:
        shop.gate.close()
    assert cli.main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    served = json.loads(capsys.readouterr().out)["response_cache"]
    assert served["hits"] >= hits >= 9 and served["stored"] >= 1
    route = served["routes"][0]
    assert route["endpoint"] == "GET /items/{id}" and route["serving"]
    assert route["hits"] == served["hits"]
    assert cli.main(["report", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "response cache (x-ml-optimization-applied: cache)" in out
    assert "GET /items/{id}" in out.split("response cache by route")[1]
