from __future__ import annotations

from pulsegate.learn import BaselineStore, EndpointModel


def test_lru_cap_bounds_memory_and_keeps_recent_endpoints() -> None:
    store = BaselineStore(lambda: EndpointModel(metrics=("latency",)), max_endpoints=3)
    for key in ("a", "b", "c"):
        store.get(key)
    store.get("a")  # a is now the most recent
    store.get("d")  # evicts b, the least recently used
    assert set(store) == {"a", "c", "d"}
    assert store.evictions == 1 and len(store) == 3


def test_get_returns_the_same_model() -> None:
    store = BaselineStore(lambda: EndpointModel(metrics=("latency",)))
    assert store.get("x") is store.get("x")
    assert store.peek("y") is None and len(store) == 1


def test_lookup_by_method_and_route_shares_the_keyed_model() -> None:
    store = BaselineStore(lambda: EndpointModel(metrics=("latency",)))
    model = store.lookup("GET", "/users/{id}")
    assert model.key == "GET /users/{id}" and store.get("GET /users/{id}") is model
    assert store.lookup("GET", "/users/{id}") is model
    # garbage methods and unmatched routes fold into one model each
    assert store.lookup("FOO", None) is store.lookup("BAR", None)
    assert store.lookup("FOO", None).key == "OTHER UNMATCHED" and len(store) == 2


def test_clock_eviction_spares_a_referenced_model_once() -> None:
    store = BaselineStore(lambda: EndpointModel(metrics=("latency",)), max_endpoints=2)
    a, b = store.lookup("GET", "/a"), store.lookup("GET", "/b")
    assert store.lookup("GET", "/a") is a  # a hit marks /a referenced
    c = store.lookup("GET", "/c")  # /b is dropped, /a spared
    assert set(store) == {"GET /a", "GET /c"} and store.evictions == 1
    # the index forgot /b with it: a new request gets a live model, not the dropped one
    b2 = store.lookup("GET", "/b")
    assert b2 is not b and store.peek("GET /b") is b2
    assert store.peek("GET /a") is None  # /a's second chance was used up
    assert store.lookup("GET", "/c") is c


def test_the_index_is_bounded_and_discard_forgets_a_model() -> None:
    store = BaselineStore(lambda: EndpointModel(metrics=("latency",)), max_endpoints=2)
    for i in range(100):
        store.lookup(f"M{i}", None)  # one model, a hundred method spellings
    assert len(store) == 1 and sum(len(v) for v in store.index.values()) <= 8
    model = store.lookup("GET", "/x")
    store.discard("GET /x")
    assert store.peek("GET /x") is None and store.lookup("GET", "/x") is not model
