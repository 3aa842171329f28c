"""Django's cache framework reported to a :class:`CacheMonitor`: every backend of
``settings.CACHES`` (locmem, Redis, Memcached, database, file, a third party's), each
named by its alias.

``instrument_django(monitor)`` wraps the methods of each backend instance as Django
creates it (``CacheHandler.create_connection``, as django-debug-toolbar's cache panel
does) and of the ones this thread already made. Reads are counted exactly: ``get`` asks
the backend with a private sentinel default, so a stored ``None`` is a hit and a miss
is never mistaken for one. ``get_many``, ``set_many``, ``delete_many`` and
``get_or_set`` are counted once per key from their results, whatever the backend does
inside (the base class loops over ``get``; the Redis backend sends one ``MGET``): the
calls they make inside are not counted again, nor are the redis-py commands a Redis
backend sends (:data:`~pulsegate.caches.monitor.inside_cache_call`).

Time to live: ``timeout`` as Django reads it (the backend's ``default_timeout`` when
omitted, None for ever). Value sizes: ``bytes``/``str`` values by their length; other
values are pickled to measure them on one write or hit in :data:`SIZE_SAMPLE_EVERY`
(the backend pickles them anyway; sampling keeps the copy off most calls).

The backend's behaviour is unchanged: results, defaults and exceptions reach the caller
as before; a fault in the counting is recorded in the gate's fault counter and ignored.
"""

from __future__ import annotations

import itertools
import pickle
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import CacheHandler, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from pulsegate.caches.monitor import NO_EXPIRY, CacheMonitor, inside_cache_call

__all__ = ["SIZE_SAMPLE_EVERY", "instrument_configured", "instrument_django", "uninstrument_django"]

#: One value in this many is pickled to measure its size (non-bytes values).
SIZE_SAMPLE_EVERY = 16
_MISS = object()
_perf = time.perf_counter
_MONITORS: list[CacheMonitor] = []
_ORIGINAL_CREATE: Any = None
_WRAPPED = "_pulsegate_cache_alias"
_tick = itertools.count()


def _size(value: Any) -> int | None:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value)
    if next(_tick) % SIZE_SAMPLE_EVERY:
        return None
    try:
        return len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    except Exception:
        return None


def _ttl(backend: Any, timeout: Any) -> float | None:
    if timeout is DEFAULT_TIMEOUT:
        timeout = getattr(backend, "default_timeout", None)
    if timeout is None:
        return NO_EXPIRY
    try:
        return max(0.0, float(timeout))
    except (TypeError, ValueError):
        return -1.0


def _guarded(fn: Callable[[], Any]) -> Any:
    token = inside_cache_call.set(True)
    try:
        return fn()
    finally:
        inside_cache_call.reset(token)


def _count(alias: str, what: Callable[[CacheMonitor], None]) -> None:
    for monitor in _MONITORS:
        try:
            what(monitor)
        except Exception as exc:
            monitor.faults.record("caches.django", exc)


def wrap_backend(backend: Any, alias: str) -> Any:
    """Wrap one backend instance's methods (once); returns the backend."""
    if getattr(backend, _WRAPPED, None) is not None:
        return backend
    setattr(backend, _WRAPPED, alias)
    orig = {name: getattr(backend, name) for name in
            ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "get_or_set")}

    def get(key: Any, default: Any = None, version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS:
            return orig["get"](key, default, version)
        t0 = _perf()
        try:
            value = _guarded(lambda: orig["get"](key, _MISS, version))
        except Exception:
            _count(alias, lambda m: m.failed(alias, key, _perf() - t0))
            raise
        elapsed = _perf() - t0
        hit = value is not _MISS
        _count(alias, lambda m: m.read(alias, key, hit, _size(value) if hit else None, elapsed))
        return value if hit else default

    def setter(name: str) -> Callable[..., Any]:
        original = orig[name]

        def write(key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
            if inside_cache_call.get() or not _MONITORS:
                return original(key, value, timeout, version)
            t0 = _perf()
            try:
                done = _guarded(lambda: original(key, value, timeout, version))
            except Exception:
                _count(alias, lambda m: m.failed(alias, key, _perf() - t0))
                raise
            elapsed = _perf() - t0
            if done is not False:  # add() answers False when the key was there
                ttl, size = _ttl(backend, timeout), _size(value)
                _count(alias, lambda m: m.write(alias, key, ttl, size, elapsed))
            return done

        return write

    def delete(key: Any, version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS:
            return orig["delete"](key, version)
        t0 = _perf()
        try:
            done = _guarded(lambda: orig["delete"](key, version))
        except Exception:
            _count(alias, lambda m: m.failed(alias, key, _perf() - t0))
            raise
        elapsed = _perf() - t0
        _count(alias, lambda m: m.delete(alias, key, elapsed))
        return done

    def get_many(keys: Any, version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS:
            return orig["get_many"](keys, version)
        keys = list(keys)
        t0 = _perf()
        found = _guarded(lambda: orig["get_many"](keys, version))
        share = (_perf() - t0) / max(1, len(keys))

        def count(m: CacheMonitor) -> None:
            for key in keys:
                hit = key in found
                m.read(alias, key, hit, _size(found[key]) if hit else None, share)

        _count(alias, count)
        return found

    def set_many(data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS:
            return orig["set_many"](data, timeout, version)
        t0 = _perf()
        failed = _guarded(lambda: orig["set_many"](data, timeout, version))
        share = (_perf() - t0) / max(1, len(data))
        ttl = _ttl(backend, timeout)
        refused = set(failed or ())

        def count(m: CacheMonitor) -> None:
            for key, value in data.items():
                if key not in refused:
                    m.write(alias, key, ttl, _size(value), share)

        _count(alias, count)
        return failed

    def delete_many(keys: Any, version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS:
            return orig["delete_many"](keys, version)
        keys = list(keys)
        t0 = _perf()
        done = _guarded(lambda: orig["delete_many"](keys, version))
        share = (_perf() - t0) / max(1, len(keys))
        def count(m: CacheMonitor) -> None:
            for key in keys:
                m.delete(alias, key, share)

        _count(alias, count)
        return done

    base_get_or_set = type(backend).get_or_set is BaseCache.get_or_set

    def get_or_set(key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT,
                   version: Any = None) -> Any:
        if inside_cache_call.get() or not _MONITORS or not base_get_or_set:
            return orig["get_or_set"](key, default, timeout, version)
        # Django's own BaseCache.get_or_set, step by step so that each step is counted
        # once: a read, and on a miss the add of the default (called if callable) and
        # the read back (another writer may have won the race).
        value = get(key, _MISS, version)
        if value is not _MISS:
            return value
        if callable(default):
            default = default()
        backend.add(key, default, timeout, version)
        return _guarded(lambda: orig["get"](key, default, version))

    backend.get = get
    backend.set = setter("set")
    backend.add = setter("add")
    backend.delete = delete
    backend.get_many = get_many
    backend.set_many = set_many
    backend.delete_many = delete_many
    backend.get_or_set = get_or_set
    return backend


def instrument_django(monitor: CacheMonitor) -> None:
    """Report every Django cache backend to ``monitor`` (idempotent)."""
    global _ORIGINAL_CREATE
    if monitor not in _MONITORS:
        _MONITORS.append(monitor)
    if _ORIGINAL_CREATE is None:
        _ORIGINAL_CREATE = original = CacheHandler.create_connection

        def create_connection(self: Any, alias: str) -> Any:
            return wrap_backend(original(self, alias), alias)

        CacheHandler.create_connection = create_connection  # type: ignore[method-assign]
    from django.conf import settings

    for alias in getattr(settings, "CACHES", {}) or {}:
        try:
            wrap_backend(caches[alias], alias)
        except Exception as exc:  # a backend that cannot be built: Django will say so
            monitor.faults.record("caches.django", exc)


def uninstrument_django(monitor: CacheMonitor | None = None) -> None:
    """Stop reporting to ``monitor`` (None: to any); wrapped backends then pass every
    call straight through."""
    if monitor is None:
        _MONITORS.clear()
    elif monitor in _MONITORS:
        _MONITORS.remove(monitor)


def instrument_configured(monitor: CacheMonitor) -> None:
    """:func:`instrument_django` when Django's settings are configured (else nothing:
    the caches are not usable yet)."""
    from django.conf import settings

    if settings.configured:
        instrument_django(monitor)
