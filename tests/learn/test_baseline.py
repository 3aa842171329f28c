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
