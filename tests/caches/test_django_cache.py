"""Django's cache framework on locmem and on a real Redis (the fixture starts it on
loopback; never skipped): every configured backend counted by alias, exactly once per
key, the Redis backend's own redis-py commands not counted again."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="pulsegate-tests",
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, LOGGING_CONFIG=None)
    django.setup()

from django.core.cache import caches
from django.test import override_settings

import pulsegate.caches
from pulsegate.caches.advice import pattern_rows
from pulsegate.caches.django import uninstrument_django
from pulsegate.caches.redis import uninstrument_redis
from pulsegate.engine import PulseGate

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}


@pytest.fixture()
def gate() -> Iterator[PulseGate]:
    gate = PulseGate()
    yield gate
    uninstrument_django()
    uninstrument_redis()
    gate.close()


def by_pattern(gate: PulseGate, cache: str) -> dict[str, dict[str, object]]:
    monitor = pulsegate.caches.monitor_of(gate)
    assert monitor is not None
    return {r["pattern"]: r for r in pattern_rows(monitor) if r["cache"] == cache}


def exercise(alias: str) -> None:
    cache = caches[alias]
    cache.clear()
    cache.set("user:1", {"name": "ada"}, 60)
    cache.set("user:2", None, 30)            # a stored None is a hit when read
    assert cache.get("user:1") == {"name": "ada"}
    assert cache.get("user:2", "dflt") is None
    assert cache.get("user:3", "dflt") == "dflt"
    assert cache.get_many(["user:1", "user:4"]) == {"user:1": {"name": "ada"}}
    assert cache.get_or_set("user:5", lambda: "made", 10) == "made"
    assert cache.get_or_set("user:5", "other", 10) == "made"
    assert cache.add("user:5", "again") is False   # present: no write
    cache.set_many({"user:6": 1, "user:7": 2})
    cache.delete("user:1")
    cache.delete_many(["user:6", "user:7"])


def check(gate: PulseGate, alias: str) -> None:
    r = by_pattern(gate, alias)["user:{id}"]
    # hits: user:1, user:2, user:1 (get_many), user:5 (second get_or_set)
    # misses: user:3, user:4, user:5 (first get_or_set)
    assert (r["hits"], r["misses"]) == (4, 3)
    # sets: user:1, user:2, user:5 (add of get_or_set), user:6, user:7
    assert r["sets"] == 5
    assert r["deletes"] == 3


def test_locmem_backend(gate: PulseGate) -> None:
    with override_settings(CACHES={"default": LOCMEM}):
        pulsegate.caches.instrument(gate)
        exercise("default")
        check(gate, "default")


def test_redis_backend_counted_once(redis_service, gate: PulseGate) -> None:  # type: ignore[no-untyped-def]
    caches_setting = {"default": LOCMEM,
                      "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                 "LOCATION": redis_service.url}}
    with override_settings(CACHES=caches_setting):
        pulsegate.caches.instrument(gate)   # Django's backends and redis-py both
        exercise("shared")
        check(gate, "shared")
        # the redis-py commands the backend sent were not counted a second time
        monitor = pulsegate.caches.monitor_of(gate)
        assert monitor is not None
        assert not [r for r in pattern_rows(monitor) if r["cache"].startswith("redis ")]


def test_backends_made_after_instrumenting(gate: PulseGate) -> None:
    pulsegate.caches.instrument(gate)
    with override_settings(CACHES={"default": LOCMEM, "other": dict(LOCMEM, LOCATION="o")}):
        caches["other"].get("x:1")
        assert by_pattern(gate, "other")["x:{id}"]["misses"] == 1


def test_uninstrumented_backends_behave_the_same(gate: PulseGate) -> None:
    with override_settings(CACHES={"default": LOCMEM}):
        pulsegate.caches.instrument(gate)
        uninstrument_django()
        exercise("default")   # the same answers with the wrappers passing through
