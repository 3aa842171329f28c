"""The cache monitor's counters and reports, driven with a clock of our own."""

from __future__ import annotations

import random
import tracemalloc

from fakeclock import FakeClock
from pulsegate.caches.advice import pattern_rows, ttl_advice
from pulsegate.caches.monitor import NO_EXPIRY, CacheMonitor


def row(monitor: CacheMonitor, pattern: str) -> dict[str, object]:
    return next(r for r in pattern_rows(monitor) if r["pattern"] == pattern)


def test_hits_misses_sets_deletes_per_pattern() -> None:
    m = CacheMonitor(sample=1)
    m.write("default", "user:1", 60.0, size=10)
    m.read("default", "user:1", True, size=10)
    m.read("default", "user:2", False)
    m.delete("default", "user:1")
    m.read("default", "page:home", True)
    r = row(m, "user:{id}")
    assert (r["hits"], r["misses"], r["sets"], r["deletes"]) == (1, 1, 1, 1)
    assert r["hit_rate"] == 0.5
    assert r["mean_bytes"] == 10
    assert m.stats_summary()["default"]["hits"] == 2


def test_misses_are_told_apart_cold_expired_evicted() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    m.read("c", "k:1", False)                 # never written: cold
    m.write("c", "k:2", 10.0)
    clock.t += 30                             # past its ttl: expired
    m.read("c", "k:2", False)
    m.write("c", "k:3", 300.0)
    clock.t += 5                              # ttl left, not deleted: evicted
    m.read("c", "k:3", False)
    r = row(m, "k:{id}")
    assert (r["cold_misses"], r["expired_misses"], r["evicted_misses"]) == (1, 1, 1)


def test_ttl_that_expires_before_reuse_gets_a_longer_suggestion() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    for i in range(40):                       # written with 30 s, read again after 120 s
        m.write("c", f"report:{i}", 30.0)
    clock.t += 120
    for i in range(40):
        m.read("c", f"report:{i}", False)
    advice = ttl_advice(m.patterns()[0])
    assert advice is not None and advice["problem"] == "expires before reuse"
    assert advice["suggested_ttl_s"] >= 120


def test_ttl_far_above_reuse_gets_a_shorter_suggestion() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    for i in range(100):                       # a day of ttl, read within 2 s
        m.write("c", f"u:{i}", 86400.0)
        clock.t += 2.0
        m.read("c", f"u:{i}", True)
    advice = ttl_advice(m.patterns()[0])
    assert advice is not None and advice["problem"] == "outlives its reuse"
    assert 2 <= advice["suggested_ttl_s"] <= 10


def test_no_expiry_with_short_reuse_is_advised_a_ttl() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    for i in range(60):
        m.write("c", f"u:{i}", NO_EXPIRY)
        clock.t += 1.0
        m.read("c", f"u:{i}", True)
    advice = ttl_advice(m.patterns()[0])
    assert advice is not None and advice["problem"] == "never expires"


def test_a_well_set_ttl_gets_no_advice() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    for i in range(100):
        m.write("c", f"u:{i}", 10.0)
        clock.t += 5.0
        m.read("c", f"u:{i}", True)
    assert ttl_advice(m.patterns()[0]) is None


def test_hot_key_of_a_pattern() -> None:
    m = CacheMonitor()
    rng = random.Random(1)
    for _ in range(1000):
        key = "product:42" if rng.random() < 0.6 else f"product:{rng.randrange(10_000)}"
        m.read("c", key, True)
    r = row(m, "product:{id}")
    assert r["hot_key"] is True and 0.5 < float(r["hot_key_share"]) < 0.75  # type: ignore[arg-type]
    flat = CacheMonitor()
    for i in range(1000):
        flat.read("c", f"product:{i % 500}", True)
    assert row(flat, "product:{id}")["hot_key"] is False


def test_memory_is_bounded_by_configuration_not_traffic() -> None:
    m = CacheMonitor(max_patterns=20, max_tracked_keys=100, sample=1)
    rng = random.Random(2)
    for i in range(20_000):
        word = "".join(rng.choices("abcdefghij", k=6))
        m.write(f"cache{i % 3}", f"{word}:{word}:{i}", 5.0)
        m.read(f"cache{i % 3}", f"{word}x", False)
    assert len(m.stats) <= 20
    assert len(m.tracked) <= 100
    assert len(m.keys.memo) <= m.keys.memo.maxsize


def test_the_kinds_of_misses_are_estimated_from_a_key_sample() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=4)
    for i in range(4000):
        m.write("c", f"k:{i}", 10.0)
    clock.t += 60
    for i in range(4000):
        m.read("c", f"k:{i}", False)
    r = row(m, "k:{id}")
    assert r["misses"] == 4000                       # every miss is counted
    assert 3400 <= r["expired_misses"] <= 4600       # their kind is estimated (x4)
    assert len(m.tracked) < 1400


# --- reads queued on the calling thread (the redis GET path), counted by drain() -----

def test_queued_reads_count_as_reads_in_their_order_and_at_their_time() -> None:
    clock = FakeClock()
    m = CacheMonitor(clock=clock, sample=1)
    m.read_later("c", "k:1", False, None, 0.001)  # a miss before the key is written: cold
    clock.t += 1
    m.write("c", "k:1", 10.0)                      # counts the queued read first
    clock.t += 30
    m.read_later("c", "k:1", False, None, 0.001)  # 30 s later: expired
    m.write("c", "k:2", 600.0)
    clock.t += 5
    m.read_later("c", "k:2", True, 3, 0.001)      # reused 5 s after its write
    clock.t += 1000                                # the drain runs much later
    r = row(m, "k:{id}")
    assert (r["reads"], r["misses"], r["cold_misses"], r["expired_misses"]) == (3, 2, 1, 1)
    assert 5.0 <= r["reuse_p50_s"] <= 5.0 * 1.5  # the read's own time, not the drain's


def test_no_queued_read_is_dropped_and_the_queue_stays_bounded() -> None:
    from pulsegate.caches.monitor import MAX_PENDING

    m = CacheMonitor()
    for i in range(3 * MAX_PENDING + 7):
        m.read_later("c", f"user:{i % 50}", i % 3 == 0, 3, 0.0)
        assert len(m.pending) <= MAX_PENDING
    assert m.stats_summary()["c"]["calls"] == 3 * MAX_PENDING + 7
    assert not m.pending


def test_a_long_key_queued_for_the_drain_is_not_kept_whole() -> None:
    """Attack probe (hsec6): redis-py's GET is counted later (read_later: the queue the
    scheduler drains every 0.5 s, or past MAX_PENDING the caller). A key built from a
    request body is that body's size, and the queue kept it whole until the drain: 1 000
    GETs with 1 MB keys held 1 000 MB while the drain waited (a scheduler held by a job).
    Now a queued key is cut one character past what its pattern reads, and it folds to
    the pattern of the whole key."""
    m = CacheMonitor(sample=1, key_words=("search",))
    whole = "search:" + "q" * 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            m.read_later("default", f"search:{i}" + "q" * 100_000, False, None, 0.001)
            m.read_later("default", f"search:{i}".encode() + "é".encode() * 50_000, False,
                         None, 0.001)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2_000_000, held  # (before: 40 MB)
    m.drain()
    patterns = {r["pattern"]: r["misses"] for r in pattern_rows(m)}
    wide = b"search:1" + "é".encode() * 50_000  # (cut inside a character)
    assert patterns == {m.keys.pattern(whole): 200, m.keys.pattern(wide): 200}, patterns
