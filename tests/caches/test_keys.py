"""Cache keys fold into bounded patterns: ids never reported, free text capped."""

from __future__ import annotations

import json
import os
import random
import re
import string
import subprocess
import sys
import sysconfig
import time
import types
import uuid
from pathlib import Path

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
    module.__file__ = str(Path(__file__).with_name("later_module.py"))  # the application's
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
    from pulsegate.caches.module_strings import MAX_CONSTANT
    from pulsegate.caches.vocabulary import Vocabulary

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
    module.__file__ = str(Path(__file__).with_name("half_imported.py"))  # the application's
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


# --- libraries: a word counts only beside the neighbour a key-shaped constant gives it --

def test_a_library_word_is_kept_beside_its_neighbour_only() -> None:
    from pulsegate.caches.module_strings import is_library

    site = sysconfig.get_paths()["purelib"]
    app_word, lone, named, neighbour = (joined("qua", "drel"), joined("vos", "trim"),
                                        joined("Glen", "dorf"), joined("pel", "torn"))
    meta = [joined("kal", "vesh"), joined("tru", "mond"), joined("obe", "ling")]
    library = types.ModuleType("pulsegate_test_site_library")
    library.__file__ = os.path.join(site, "pulsegate_test_site_library.py")
    exec(f"WORD = '{lone}'\n"  # a lone word (a user name in the making: "admin")
         f"URL_NAME = '{lone}:{neighbour}'\n"  # the same word in a key shape
         f"PREFIX = '{'-'.join(meta)}-'\n"  # a key template: "celery-task-meta-"
         f"class {named}:\n"
         "    def key(self, pk):\n"
         f"        return f'{neighbour}:{{pk}}'\n", library.__dict__)
    app = types.ModuleType("pulsegate_test_app_module")
    app.__file__ = str(Path(__file__).with_name("app_module.py"))
    exec(f"def key(user):\n    return f'{app_word}:{{user}}'\n", app.__dict__)
    for module in (library, app):
        sys.modules[module.__name__] = module
    try:
        assert is_library(library) and not is_library(app)
        p = ready_folder()
        assert p.pattern(f"{app_word}:7") == f"{app_word}:{{id}}"  # the application's rule
        assert p.pattern(f"{app_word}:{lone}") == f"{app_word}:{{*}}"  # was kept before
        assert p.pattern(f"{lone}:{app_word}") == f"{{*}}:{app_word}"
        assert p.pattern(f"{lone}:{neighbour}:3") == f"{lone}:{neighbour}:{{id}}"
        task = uuid.uuid4()
        assert p.pattern(f"{'-'.join(meta)}-{task}") == f"{'-'.join(meta)}-{{id}}"
        assert p.pattern(f"{meta[1]}:{meta[2]}") == "{*}:{*}"  # another delimiter: not the pair
        assert p.pattern(f"{neighbour}:9") == "{*}:{id}"  # a lone library word: folded
        assert p.pattern(f"{named.lower()}:9") == "{*}:{id}"  # a library's names: not read
    finally:
        for module in (library, app):
            del sys.modules[module.__name__]


_LIBRARY_KEYS = """
import json, sys
sys.path[:0] = sys.argv[1:]
from key_vocabulary import PROBES, library_keys, setup_django
from pulsegate.caches.keys import fold
from pulsegate.caches.vocabulary import ProgramWords

def main():  # the keys stay local: this module has no file, so it is read as a library
    setup_django()
    keys = library_keys()
    words = ProgramWords(start=False, application=False)
    words.read_new_modules()
    names = [fold(s.format(n), words.words).split(":")[1] for n in PROBES.split()
             for s in ("session:{}", "x:{}:prefs")]
    print(json.dumps({"keys": [fold(k, words.words) for k in keys], "names": names}))

main()
"""


def test_the_keys_django_celery_and_rq_build_keep_their_words_and_names_fold() -> None:
    """In a fresh process with the web stack loaded, the libraries' words alone (no
    application module read): the keys they build keep their words; none of the probe
    user names (``admin``, ``max``, ``april``...) survives next to a word they do not
    sit beside in a library constant."""
    import pulsegate

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(Path(pulsegate.__file__).parents[1]))  # this one
    out = subprocess.run([sys.executable, "-c", _LIBRARY_KEYS, str(root / "benchmarks"),
                          str(root / "tests" / "caches")], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    found = json.loads(out.stdout.splitlines()[-1])
    page, header, session, task, group, chord, job, queue, wip, failed = found["keys"]
    assert page.startswith(":{id}:views.decorators.cache.cache_page..GET.{id}.{id}.en-us.")
    assert header.startswith(":{id}:views.decorators.cache.cache_header..{id}.en-us.")
    assert session == ":{id}:django.contrib.sessions.{id}"
    assert (task, group, chord) == ("celery-task-meta-{id}", "celery-taskset-meta-{id}",
                                    "chord-unlock-{id}")
    assert job == "rq:job:{id}"
    assert (queue, wip, failed) == ("rq:queue:{*}", "rq:wip:{*}", "rq:failed:{*}")  # app's name
    assert set(found["names"]) == {"{*}"}, found["names"]


def test_a_function_the_script_defines_after_the_monitor_is_read_at_once() -> None:
    main = sys.modules["__main__"]
    first, second = joined("brin", "dlewood"), joined("cas", "terfell")
    p = ready_folder()
    exec(f"def _pulsegate_test_key(pk):\n    return f'{first}:{second}:{{pk}}'\n", main.__dict__)
    try:
        assert p.pattern(f"{first}:{second}:5") == f"{first}:{second}:{{id}}"  # no wait
    finally:
        del main.__dict__["_pulsegate_test_key"]
