from __future__ import annotations

import copy
import doctest
import pickle

from pulsegate import bounded
from pulsegate.bounded import BoundedLRU


def test_doctests_pass() -> None:
    assert doctest.testmod(bounded).failed == 0


def test_put_past_maxsize_evicts_the_least_recently_used() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(3)
    for i, key in enumerate("abc"):
        assert lru.put(key, i) is None
    assert lru.touch("a") == 0          # a is refreshed: b is now the oldest
    assert lru.put("d", 3) == ("b", 1)
    assert list(lru) == ["c", "a", "d"]
    assert lru.put("c", 9) is None      # an update is not an insert: nothing evicted
    assert list(lru.items()) == [("a", 0), ("d", 3), ("c", 9)]


def test_get_does_not_refresh() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    assert lru.put("c", 3) == ("a", 1)


def test_touch_of_a_missing_key_is_none_and_adds_nothing() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2)
    assert lru.touch("x") is None
    assert len(lru) == 0


def test_size_never_exceeds_maxsize_under_many_distinct_keys() -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(100)
    for i in range(10_000):
        lru.put(i, i)
        assert len(lru) <= 100
    assert list(lru) == list(range(9_900, 10_000))


def test_resize_evicts_oldest_first_and_a_cap_is_at_least_one() -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(5)
    for i in range(5):
        lru.put(i, i)
    assert lru.resize(2) == [(0, 0), (1, 1), (2, 2)]
    assert BoundedLRU(0).maxsize == 1
    assert lru.resize(10) == [] and lru.maxsize == 10


def test_copies_and_pickles_keep_cap_and_order() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    for other in (copy.copy(lru), copy.deepcopy(lru), pickle.loads(pickle.dumps(lru))):
        assert isinstance(other, BoundedLRU)
        assert other.maxsize == 2 and list(other.items()) == [("a", 1), ("b", 2)]
        assert other.put("c", 3) == ("a", 1)


def test_newest_reads_a_deque_other_threads_append_to() -> None:
    """The registry reads the gate's recent anomalies, incidents and detections while
    request threads append to them: reading must never raise "deque mutated during
    iteration" (it did, about one threaded run in four: hsec4's probe)."""
    from collections import deque

    from pulsegate.bounded import newest
    from threadburst import in_threads

    log: deque[int] = deque(range(256), maxlen=256)
    errors: list[BaseException] = []
    reading = [2]

    def work(i: int) -> None:
        if i % 2:
            while reading[0]:
                log.append(i)
            return
        try:
            for _ in range(20_000):
                try:
                    assert len(newest(log, 16)) == 16
                except RuntimeError as exc:
                    errors.append(exc)
        finally:
            reading[0] -= 1

    in_threads(work, 4)
    assert errors == []
