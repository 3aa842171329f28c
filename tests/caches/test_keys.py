"""Cache keys fold into bounded patterns: ids never reported, free text capped."""

from __future__ import annotations

import random
import re
import string
import sys
import time
import types

from pulsegate.caches.keys import MAX_KEY_CHARS, KeyPatterns, fold


def ready_folder() -> KeyPatterns:
    """A folder whose vocabulary has read every loaded module."""
    p = KeyPatterns()
    assert p.words.ready()  # type: ignore[attr-defined]
    return p


def test_ids_fold_and_names_stay() -> None:
    p = ready_folder()
    assert p.pattern("user:1234:profile") == "user:{id}:profile"
    assert p.pattern("user:99:profile") == "user:{id}:profile"
    assert p.pattern("sess:9f86d081884c7d65") == "sess:{id}"
    assert p.pattern("order/550e8400-e29b-41d4-a716-446655440000/items") == "order/{id}/items"
    assert p.pattern("feed:page3") == "feed:page{n}"
    assert p.pattern("token:" + "aZ09" * 8) == "token:{id}"
    assert p.pattern("homepage") == "homepage"


def test_no_raw_id_survives_in_a_pattern() -> None:
    p = ready_folder()
    rng = random.Random(3)
    for _ in range(500):
        uid = rng.randrange(10**12)
        pattern = p.pattern(f"cart:{uid}:v2")
        assert str(uid) not in pattern


def test_free_text_under_one_head_folds_to_a_wildcard() -> None:
    words = ["".join(random.Random(i).choices(string.ascii_lowercase, k=7)) for i in range(200)]
    p = KeyPatterns(max_tails=16, words={"search", *words})  # words the code spells, even so
    patterns = {p.pattern(f"search:{w}") for w in words}
    assert "search:{*}" in patterns
    assert len(patterns) <= 17
    # the early ones fold too once the head is wide
    assert p.pattern(f"search:{words[0]}") == "search:{*}"


def test_bytes_and_long_keys() -> None:
    p = ready_folder()
    assert p.pattern(b"user:7") == "user:{id}"
    long_key = "a:" + "b" * 100_000
    t0 = time.perf_counter()
    out = p.pattern(long_key)
    assert time.perf_counter() - t0 < 0.05
    assert len(out) <= MAX_KEY_CHARS + 3 and out.endswith("...")


def test_fold_is_linear_on_adversarial_keys() -> None:
    for key in ("-" * 5000, "0-" * 5000, "a1" * 5000, "ff" * 5000):
        t0 = time.perf_counter()
        fold(key, {"a", "ff"})
        assert time.perf_counter() - t0 < 0.05


def test_emails_and_mixed_ids_never_survive() -> None:
    p = ready_folder()
    assert p.pattern("rl:jo.smith@example.com:login") == "rl:{id}:login"
    assert p.pattern("session:ana-maria@mail.example.org") == "session:{id}"
    assert p.pattern("stripe:cus_NffrFeUfNV2Hib") == "stripe:cus_{id}"
    assert p.pattern("user:u5r9x") == "user:{id}"
    assert p.pattern("feed:page3") == "feed:page{n}"  # a counter, not an id


def test_email_folding_stays_linear() -> None:
    for key in ("a" * 5000 + "@", "@" * 5000, "a@" * 5000):
        t0 = time.perf_counter()
        fold(key, {"a", "ff"})
        assert time.perf_counter() - t0 < 0.05


# --- fail-closed: a word survives only when the program spells it ---------------------
# A word written here as a literal is a constant of this module, so part of the program's
# vocabulary: the words that must NOT be known are put together at run time.

def joined(*pieces: str) -> str:
    return "".join(pieces)


_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
           "w", "z", "br", "ch", "cl", "dr", "fr", "gr", "kr", "pl", "sh", "st", "th", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "y", "ai", "ea", "ie", "oa", "ou")
_CODAS = ("", "", "n", "l", "r", "s", "th", "x", "nd", "rk", "ssa", "na", "lle")


def generated_user_names(count: int, seed: int) -> list[str]:
    """Pronounceable names of 2-4 syllables (``ravine``, ``Theola``), some capitalised,
    some joined as ``first.last`` / ``first_last`` / ``first-last``: made here, so no
    constant of any loaded module spells them except by chance."""
    rng = random.Random(seed)

    def name() -> str:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS)
                       for _ in range(rng.randint(2, 4))) + rng.choice(_CODAS)
        return word.capitalize() if rng.random() < 0.3 else word

    out = []
    for _ in range(count):
        joint = rng.choice(("", "", "", ".", "_", "-"))
        out.append(name() + joint + name() if joint else name())
    return out


def test_all_letter_user_names_never_survive_in_a_pattern() -> None:
    p = KeyPatterns()  # the loaded program's own vocabulary
    assert p.words.ready()  # type: ignore[attr-defined]
    names = generated_user_names(2000, seed=21)
    spelled = [n for n in names if all(w in p.words for w in re.split(r"[._-]", n))]
    assert len(spelled) <= len(names) // 100  # a chance word of the code: rare
    for name in names:
        if name in spelled:
            continue
        for template in ("session:{}", "cart:{}:items", "rl/{}/login", "profile.{}.v2",
                         "{}:prefs"):
            pattern = p.pattern(template.format(name))
            kept = set(re.split(r"[:/._-]+", pattern))
            assert not kept & set(re.split(r"[._-]", name)), (name, pattern)
    single = [n for n in names if n.isalpha() and n not in spelled]
    assert p.pattern(f"session:{single[0]}") == "session:{*}"
    assert p.pattern(f"{single[1]}:prefs") == "{*}:prefs"
    assert p.pattern(f"rl/{single[2]}/login") == "rl/{*}/login"


def test_words_of_code_loaded_later_and_of_settings_are_kept() -> None:
    p = KeyPatterns()
    assert p.words.ready()  # type: ignore[attr-defined]
    prefix, basket, wardrobe = joined("zen", "trabox"), joined("plim", "soll"), joined("Ward", "robe")
    assert p.pattern(f"{basket}:1") == "{*}:{id}"  # no loaded code spells it yet
    module = types.ModuleType("pulsegate_test_later_module")
    exec(f"CACHES = {{'default': {{'KEY_PREFIX': '{prefix}'}}}}\n"
         "def basket_key(user):\n"
         f"    return f'{basket}_bag:{{user}}'\n"
         f"class {wardrobe}:\n"
         "    def key(self, pk):\n"
         "        return str(pk)\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        p.pattern(f"{basket}_bag:7")  # starts the read of the new module (background)
        assert p.words.ready()  # type: ignore[attr-defined]
        assert p.pattern(f"{basket}_bag:7") == f"{basket}_bag:{{id}}"
        assert p.pattern(f"{prefix}:{basket}_bag:{joined('xqv', 'orna')}") == \
            f"{prefix}:{basket}_bag:{{*}}"
        assert p.pattern(f"{wardrobe}:3") == f"{wardrobe}:{{id}}"
        assert p.pattern(f"{wardrobe.lower()}:9") == f"{wardrobe.lower()}:{{id}}"
    finally:
        del sys.modules[module.__name__]


def test_configured_words_are_kept() -> None:
    from pulsegate.caches.vocabulary import Vocabulary

    p = KeyPatterns(words=Vocabulary(["tenant", "acme-corp"]))
    assert p.pattern("tenant:acme-corp:9") == "tenant:acme-corp:{id}"
    assert p.pattern(joined("tenant:", "glo", "bex", ":9")) == "tenant:{*}:{id}"


def test_prose_and_long_constants_are_not_words() -> None:
    from pulsegate.caches.vocabulary import MAX_CONSTANT, Vocabulary

    module = types.ModuleType("pulsegate_test_prose_module")
    exec("def greet():\n"
         f"    return 'hello {joined('van', 'torq')}, welcome'\n"
         "def table():\n"
         f"    return '{'x' * MAX_CONSTANT}:{joined('brum', 'lingq')}'\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        words = Vocabulary()
        assert words.ready()
        assert "greet" in words and "table" in words
        assert joined("van", "torq") not in words and joined("brum", "lingq") not in words
    finally:
        del sys.modules[module.__name__]


def test_patterns_are_memoised_again_once_a_later_import_is_read() -> None:
    p = ready_folder()
    module = types.ModuleType("pulsegate_test_quiet_import")
    sys.modules[module.__name__] = module  # an import with no new word in it
    try:
        key = "user:1234:profile"
        assert p.pattern(key) == "user:{id}:profile"  # right, not kept: a read was due
        assert p.words.ready()  # type: ignore[attr-defined]
        p.pattern(key)
        assert p.memo.get(key) == "user:{id}:profile"  # kept from now on: calls stay cheap
    finally:
        del sys.modules[module.__name__]


def test_a_module_still_being_imported_is_read_once_it_is_done() -> None:
    from importlib.machinery import ModuleSpec

    from pulsegate.caches.vocabulary import ProgramWords

    word = joined("snor", "kelwick")
    module = types.ModuleType("pulsegate_test_half_imported")
    module.__spec__ = ModuleSpec(module.__name__, None)
    module.__spec__._initializing = True  # type: ignore[attr-defined]
    module.__dict__["PREFIX"] = word
    sys.modules[module.__name__] = module
    try:
        words = ProgramWords(start=False)
        words.read_new_modules()
        assert word not in words.words and not words.settled
        module.__spec__._initializing = False  # type: ignore[attr-defined]
        assert words.ready()
        assert word in words
    finally:
        del sys.modules[module.__name__]
