"""Cache keys fold into bounded patterns: ids never reported, free text capped."""

from __future__ import annotations

import random
import string
import time

from pulsegate.caches.keys import MAX_KEY_CHARS, KeyPatterns, fold


def test_ids_fold_and_names_stay() -> None:
    p = KeyPatterns()
    assert p.pattern("user:1234:profile") == "user:{id}:profile"
    assert p.pattern("user:99:profile") == "user:{id}:profile"
    assert p.pattern("sess:9f86d081884c7d65") == "sess:{id}"
    assert p.pattern("order/550e8400-e29b-41d4-a716-446655440000/items") == "order/{id}/items"
    assert p.pattern("feed:page3") == "feed:page{n}"
    assert p.pattern("token:" + "aZ09" * 8) == "token:{id}"
    assert p.pattern("homepage") == "homepage"


def test_no_raw_id_survives_in_a_pattern() -> None:
    p = KeyPatterns()
    rng = random.Random(3)
    for _ in range(500):
        uid = rng.randrange(10**12)
        pattern = p.pattern(f"cart:{uid}:v2")
        assert str(uid) not in pattern


def test_free_text_under_one_head_folds_to_a_wildcard() -> None:
    p = KeyPatterns(max_tails=16)
    words = ["".join(random.Random(i).choices(string.ascii_lowercase, k=7)) for i in range(200)]
    patterns = {p.pattern(f"search:{w}") for w in words}
    assert "search:{*}" in patterns
    assert len(patterns) <= 17
    # the early ones fold too once the head is wide
    assert p.pattern(f"search:{words[0]}") == "search:{*}"


def test_bytes_and_long_keys() -> None:
    p = KeyPatterns()
    assert p.pattern(b"user:7") == "user:{id}"
    long_key = "a:" + "b" * 100_000
    t0 = time.perf_counter()
    out = p.pattern(long_key)
    assert time.perf_counter() - t0 < 0.05
    assert len(out) <= MAX_KEY_CHARS + 3 and out.endswith("...")


def test_fold_is_linear_on_adversarial_keys() -> None:
    for key in ("-" * 5000, "0-" * 5000, "a1" * 5000, "ff" * 5000):
        t0 = time.perf_counter()
        fold(key)
        assert time.perf_counter() - t0 < 0.05


def test_emails_and_mixed_ids_never_survive() -> None:
    p = KeyPatterns()
    assert p.pattern("rl:jo.smith@example.com:login") == "rl:{id}:login"
    assert p.pattern("session:ana-maria@mail.example.org") == "session:{id}"
    assert p.pattern("stripe:cus_NffrFeUfNV2Hib") == "stripe:cus_{id}"
    assert p.pattern("user:u5r9x") == "user:{id}"
    assert p.pattern("feed:page3") == "feed:page{n}"  # a counter, not an id


def test_email_folding_stays_linear() -> None:
    for key in ("a" * 5000 + "@", "@" * 5000, "a@" * 5000):
        t0 = time.perf_counter()
        fold(key)
        assert time.perf_counter() - t0 < 0.05
