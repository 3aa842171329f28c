from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsegate.queries.fingerprint import FingerprintCache, fingerprint, normalize


def test_literals_placeholders_and_case_fold_to_one_shape() -> None:
    shapes = {
        fingerprint("SELECT * FROM book WHERE id = 5 AND title = 'x'").text,
        fingerprint("select *  from BOOK\n where ID = 7 and title = 'it''s'").text,
        fingerprint("SELECT * FROM book WHERE id = %s AND title = %(t)s").text,
        fingerprint("SELECT * FROM book WHERE id = :id AND title = $2").text,
        fingerprint("SELECT * FROM book WHERE id = ? AND title = ? -- comment").text,
        fingerprint("/* traceparent='00-abc' */ SELECT * FROM book WHERE id = 1.5e3 AND title = ?").text,
    }
    assert shapes == {"select * from book where id = ? and title = ?"}


def test_in_lists_and_multi_row_values_collapse() -> None:
    a = fingerprint("SELECT a FROM t WHERE id IN (1, 2, 3)")
    b = fingerprint("SELECT a FROM t WHERE id IN (?, ?, ?, ?, ?, ?)")
    assert a.text == b.text == "select a from t where id in (?)" and a.hash == b.hash
    many = fingerprint("INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)")
    one = fingerprint("INSERT INTO t (a, b) VALUES (?, ?)")
    assert many.multi_row and not one.multi_row
    assert many.text == "insert into t(a, b) values (?, ?), ..."
    assert fingerprint("insert into t (a) values (1), (2)").text == "insert into t(a) values (?), ..."


def test_booleans_are_literals_and_identifiers_with_digits_stay() -> None:
    fp = fingerprint('SELECT t1.c2 FROM "T1" WHERE flag = TRUE AND other = false')
    assert fp.text == 'select t1.c2 from "T1" where flag = ? and other = ?'
    assert fp.verb == "select"
    assert len(fp.id) == 16 and fp.hash == fingerprint(fp.text).hash


def test_cache_is_a_bounded_lru_with_hit_counts() -> None:
    cache = FingerprintCache(maxsize=2)
    cache.get("select 1")
    cache.get("select 2")
    cache.get("select 1")  # hit, now most recent
    cache.get("select 3")  # evicts "select 2"
    assert len(cache) == 2 and cache.hits == 1 and cache.misses == 3
    cache.get("select 2")
    assert cache.misses == 4
    assert 0 < cache.hit_rate < 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="'\"`/*-()?:%$,.0123456789abcINVALUES \n\\[]", max_size=400) | st.text(max_size=200))
def test_never_raises_on_any_text(sql: str) -> None:
    fp = FingerprintCache(10).get(sql)
    assert isinstance(fp.text, str) and 0 <= fp.hash < 2**64


def _time(sql: str) -> float:
    # Thread CPU time: other processes on a shared machine do not count.
    t = time.thread_time()
    normalize(sql)
    return time.thread_time() - t


def test_linear_time_on_adversarial_inputs() -> None:
    """Doubling the input must not quadruple the time (no catastrophic backtracking)."""
    patterns = ["'", "/*", "%(", "(?, ", "\"", "`", "'a", "/*/*", "((((", "in (?, ?, ?" , "1.", "e'\\"]
    for unit in patterns:
        small = min(_time(unit * 5_000) for _ in range(3))
        big = min(_time(unit * 20_000) for _ in range(3))
        assert big < 4 * 3 * small + 0.01, (unit, small, big)  # 4x input, well under 16x time
        assert big < 1.0


def test_cache_is_safe_across_threads() -> None:
    import threading

    cache = FingerprintCache(maxsize=16)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        try:
            for i in range(3000):
                fp = cache.get(f"select {(i * seed) % 40} from t")
                assert fp.text == "select ? from t"
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in (1, 3, 7, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) <= 16


def test_long_statements_are_cached_by_what_is_read_of_them() -> None:
    """Attack probe: raw SQL carrying a user's text inline (a 256 KiB literal, different
    each time). The cache kept every statement whole as its key: 64 entries held 16 MiB.
    Only the first MAX_SCAN characters are read, so only those (+1) key the entry; the
    fingerprint is the one of the whole statement."""
    import tracemalloc

    from pulsegate.queries.sqlscan import MAX_SCAN

    cache = FingerprintCache(maxsize=64)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            sql = f"insert into notes (id, body) values ({i}, '" + "x" * 262_144 + "')"
            assert cache.get(sql) == FingerprintCache(1).get(sql)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 64 and held < 64 * 4 * MAX_SCAN, held  # whole keys: 16 MiB
    long = "select a from t where b in (" + ", ".join(["?"] * 20_000) + ")"
    assert cache.get(long).text == normalize(long)[0]
    hits = cache.hits
    assert cache.get(long[:-1] + ", ?)").text == normalize(long)[0]  # differs past the cap
    assert cache.hits == hits + 1
