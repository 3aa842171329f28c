"""The cache-key vocabulary of a process with the usual web stack loaded: how many
modules and words, how long the read takes, which user names survive in a key pattern,
and what the keys the libraries build themselves fold to.

    .venv/bin/python benchmarks/key_vocabulary.py [--names 10000] [--seed 99]
    PYTHONPATH=/work/main/src .venv/bin/python benchmarks/key_vocabulary.py   # another tree

User names: the 25 probe names below (17 named in docs/dev-notes/issue-21-io.md, 8
added: names that are also English words) and ``tests/caches/test_keys.py``'s generated
names (pronounceable, 2-4 syllables, some ``first.last``), each in five key shapes.
None is a constant of a loaded module (the probe list is one string with spaces: prose,
never read). Library keys: made by calling Django (``cache_page`` / cache middleware
keys, session cache keys), Celery (result backend keys) and RQ (job, queue, registry
keys), each folded with the whole program's words and, where the tree can, with the
libraries' alone (``ProgramWords(application=False)``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBES = ("alice bob carol john mary james hope rose max mark will grant april admin root "
          "test guest frank jack ruby june dawn summer user support")
SHAPES = ("session:{}", "cart:{}:items", "rl/{}/login", "profile.{}.v2", "{}:prefs")


def library_keys() -> list[str]:
    """Keys as the libraries build them (no I/O: nothing is stored)."""
    from celery import Celery
    from django.contrib.sessions.backends.cache import SessionStore
    from django.core.cache import caches
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.utils.cache import (  # type: ignore[attr-defined]
        _generate_cache_header_key,
        learn_cache_key,
    )
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    cache = caches["default"]
    request = RequestFactory().get("/shop/items/?page=2")
    response = HttpResponse(b"x")
    response["Vary"] = "Accept-Language"
    page = learn_cache_key(request, response, 60, "", cache=cache)
    header = _generate_cache_header_key("", request)
    session = SessionStore()
    session.create()  # stored in the local-memory cache
    celery = Celery(backend="redis://127.0.0.1:1/0")
    backend = celery.backend
    task = str(uuid.uuid4())
    redis = Redis(port=1)  # never connected
    queue = Queue("default", connection=redis)
    keys = [cache.make_key(page), cache.make_key(header), cache.make_key(session.cache_key),
            backend.get_key_for_task(task), backend.get_key_for_group(task),
            backend.get_key_for_chord(task), Job.key_for(task), queue.key,
            StartedJobRegistry(queue=queue).key, FailedJobRegistry(queue=queue).key]
    return [k.decode() if isinstance(k, bytes) else k for k in keys]


def setup_django() -> None:
    """Load the usual web stack and set Django up with the admin and sessions."""
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
                                       "django.contrib.messages"],
                       ALLOWED_HOSTS=["testserver"], USE_TZ=True, TIME_ZONE="UTC")
    django.setup()
    import django.contrib.admin.sites
    import django.views.decorators.cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "tests" / "caches"), str(ROOT / "tests")]
    setup_django()
    from test_keys import generated_user_names  # type: ignore[import-not-found]

    import pulsegate.django
    import pulsegate.engine  # noqa: F401
    from pulsegate.caches.keys import fold
    from pulsegate.caches.vocabulary import ProgramWords

    keys = library_keys()  # imports what building them needs, before the read
    t0 = time.perf_counter()
    words = ProgramWords(start=False)
    modules = words.read_new_modules()
    elapsed = time.perf_counter() - t0
    print(f"modules read {modules}, words {len(words.words)}, read in {elapsed * 1000:.0f} ms")

    libraries: ProgramWords | None = None
    try:
        libraries = ProgramWords(start=False, application=False)  # type: ignore[call-arg]
        libraries.read_new_modules()
    except TypeError:  # a tree without the option: every module's words count
        pass

    def survivors(names: list[str], vocabulary: ProgramWords) -> list[str]:
        """The names some part of which survives in one of the key shapes."""
        out = []
        for name in names:
            parts = set(re.split(r"[._-]", name))
            for shape in SHAPES:
                if parts & set(re.split(r"[:/._-]+", fold(shape.format(name), vocabulary.words))):
                    out.append(f"{name} ({shape})")
                    break
        return out

    probes = PROBES.split()
    names = generated_user_names(args.names, seed=args.seed)
    for label, vocabulary in (("the whole program's words", words),
                              ("the libraries' alone", libraries)):
        if vocabulary is None:
            continue
        kept = survivors(probes, vocabulary)
        print(f"{label}: probe names surviving in a key pattern: {len(kept)} / {len(probes)}"
              f" {kept}")
        kept = survivors(names, vocabulary)
        print(f"{label}: generated user names surviving: {len(kept)} / {len(names)} "
              f"= {100 * len(kept) / len(names):.2f} % {kept[:10]}")
    print("library-built keys: the whole program's words | the libraries' alone")
    for key in keys:
        alone = fold(key, libraries.words) if libraries is not None else "-"
        print(f"  {fold(key, words.words)}  |  {alone}")


if __name__ == "__main__":
    main()
