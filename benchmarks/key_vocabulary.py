"""The cache-key vocabulary of a process with the usual web stack loaded: how many
modules and words, how long the read takes, and how many generated user names the
loaded code happens to spell (those would survive in a key pattern).

    .venv/bin/python benchmarks/key_vocabulary.py [--names 10000] [--seed 99]

The user names come from ``tests/caches/test_keys.py``'s generator (pronounceable, 2-4
syllables, some ``first.last``), made at run time so no loaded constant holds them.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "tests" / "caches"), str(ROOT / "tests")]
    import celery  # noqa: F401
    import django
    import fastapi  # noqa: F401
    import flask  # noqa: F401
    import httpx  # noqa: F401
    import redis  # noqa: F401
    import requests  # noqa: F401
    import rq  # noqa: F401
    import sqlalchemy  # noqa: F401
    from django.conf import settings

    settings.configure(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                                       "django.contrib.sessions", "django.contrib.admin",
                                       "django.contrib.messages"])
    django.setup()
    import django.contrib.admin.sites
    import django.views.decorators.cache
    from test_keys import generated_user_names  # type: ignore[import-not-found]

    import pulsegate.django
    import pulsegate.engine  # noqa: F401
    from pulsegate.caches.vocabulary import ProgramWords

    t0 = time.perf_counter()
    words = ProgramWords(start=False)
    modules = words.read_new_modules()
    elapsed = time.perf_counter() - t0
    names = generated_user_names(args.names, seed=args.seed)
    spelled = [n for n in names if all(w in words.words for w in re.split(r"[._-]", n))]
    print(f"modules read {modules}, words {len(words.words)}, read in {elapsed * 1000:.0f} ms")
    print(f"generated user names spelled by the code: {len(spelled)} / {len(names)} "
          f"= {100 * len(spelled) / len(names):.2f} % {spelled[:10]}")


if __name__ == "__main__":
    main()
