"""redis-py clients (sync and asyncio) reported to a :class:`CacheMonitor`.

``instrument_redis(monitor)`` wraps ``execute_command`` and the pipelines' ``execute``
of ``redis.Redis`` and ``redis.asyncio.Redis`` -- every client, existing and future, as
OpenTelemetry's ``RedisInstrumentor`` does; ``instrument_redis(monitor, client)`` wraps
one client only. Reads (``GET``, ``MGET``, ``HGET``...), writes (``SET`` with its
``EX``/``PX``, ``SETEX``, ``MSET``...) and deletes are counted per key pattern; other
commands pass through with one dictionary look-up. The cache is named
``redis host:port/db`` (no password, no user).

The hook never changes what the client does: the command runs exactly as before, its
result or exception reaches the caller unchanged, and a fault in the hook itself is
counted (``gate.stats()["internal_errors"]``) and ignored. Inside a Django cache
operation (already counted by :mod:`pulsegate.caches.django`) the Redis commands it
sends are not counted again.
"""

from __future__ import annotations

import time
from typing import Any

from pulsegate.caches.commands import classify, value_size, values_written
from pulsegate.caches.monitor import CacheMonitor, inside_cache_call

__all__ = ["cache_name", "instrument_redis", "uninstrument_redis"]

_perf = time.perf_counter
#: (class, attribute) -> the original function, for uninstrument_redis
_ORIGINALS: dict[tuple[type, str], Any] = {}
#: The monitors every client reports to (class-wide instrumentation); a client wrapped
#: on its own reports to its own.
_CLASS_MONITORS: list[CacheMonitor] = []
#: The cache name is kept on the client's connection pool under this attribute
#: (computed once per pool; a pool is shared by the clients made from it).
_NAME_ATTR = "_pulsegate_cache_name"


def cache_name(client: Any) -> str:
    """``redis host:port/db`` of a client (its connection pool's settings; no user,
    no password)."""
    pool = getattr(client, "connection_pool", None)
    name: str | None = getattr(pool, _NAME_ATTR, None)
    if name is not None:
        return name
    kw = getattr(pool, "connection_kwargs", None) or {}
    where = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    name = f"redis {where}/{kw.get('db', 0)}"
    try:
        setattr(pool, _NAME_ATTR, name)
    except (AttributeError, TypeError):
        pass
    return name


def _hit(command: Any, result: Any) -> bool:
    if result is None:
        return False
    if isinstance(result, dict):
        return bool(result)
    if isinstance(result, list) and str(command).upper() == "HMGET":
        return any(v is not None for v in result)
    return True


def report(monitors: list[CacheMonitor], client: Any, args: tuple[Any, ...], result: Any,
           elapsed: float, error: bool) -> None:
    """Count one command's outcome on every monitor (never raises)."""
    try:
        found = classify(args)
        if found is None:
            return
        op, keys, ttl = found
        name = cache_name(client)
        share = elapsed / max(1, len(keys))
        for monitor in monitors:
            if error:
                monitor.failed(name, keys[0], elapsed)
            elif op == "read":
                if len(keys) == 1:
                    monitor.read(name, keys[0], _hit(args[0], result), value_size(result)
                                 if isinstance(result, (bytes, str)) else None, elapsed)
                else:
                    for key, value in zip(keys, result or (), strict=False):
                        monitor.read(name, key, value is not None, value_size(value), share)
            elif op == "write":
                values = values_written(str(args[0]), args)
                for i, key in enumerate(keys):
                    monitor.write(name, key, ttl, value_size(values[i]) if i < len(values)
                                  else None, share)
            else:
                for key in keys:
                    monitor.delete(name, key, share)
    except Exception as exc:
        if monitors:
            monitors[0].faults.record("caches.redis", exc)


def _command_wrapper(original: Any, monitors: list[CacheMonitor]) -> Any:
    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        if not monitors or inside_cache_call.get():
            return original(self, *args, **options)
        t0 = _perf()
        try:
            result = original(self, *args, **options)
        except Exception:
            report(monitors, self, args, None, _perf() - t0, True)
            raise
        elapsed = _perf() - t0
        if args[0] != "GET" or len(args) != 2:
            report(monitors, self, args, result, elapsed, False)
            return result
        try:  # GET, the common case, counted in line (this runs on every call)
            name = getattr(self.connection_pool, _NAME_ATTR, None) or cache_name(self)
            hit = result is not None
            size = len(result) if hit and result.__class__ is bytes else None
            for monitor in monitors:  # counted on the scheduler thread (drain)
                monitor.read_later(name, args[1], hit, size, elapsed)
        except Exception as exc:
            monitors[0].faults.record("caches.redis", exc)
        return result

    execute_command.__wrapped__ = original  # type: ignore[attr-defined]
    return execute_command


def _async_command_wrapper(original: Any, monitors: list[CacheMonitor]) -> Any:
    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        if not monitors or inside_cache_call.get():
            return await original(self, *args, **options)
        t0 = _perf()
        try:
            result = await original(self, *args, **options)
        except Exception:
            report(monitors, self, args, None, _perf() - t0, True)
            raise
        report(monitors, self, args, result, _perf() - t0, False)
        return result

    execute_command.__wrapped__ = original  # type: ignore[attr-defined]
    return execute_command


def _report_pipeline(monitors: list[CacheMonitor], pipe: Any, stack: list[Any],
                     results: Any, elapsed: float, error: bool) -> None:
    if not stack:
        return
    share = elapsed / len(stack)
    if error or not isinstance(results, list):
        for args, _options in stack:
            report(monitors, pipe, tuple(args), None, share, True)
        return
    for (args, _options), result in zip(stack, results, strict=False):
        report(monitors, pipe, tuple(args), result, share, isinstance(result, Exception))


def _pipeline_wrapper(original: Any, monitors: list[CacheMonitor]) -> Any:
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not monitors or inside_cache_call.get():
            return original(self, *args, **kwargs)
        stack = _stack_of(self)
        t0 = _perf()
        try:
            results = original(self, *args, **kwargs)
        except Exception:
            _report_pipeline(monitors, self, stack, None, _perf() - t0, True)
            raise
        _report_pipeline(monitors, self, stack, results, _perf() - t0, False)
        return results

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute


def _async_pipeline_wrapper(original: Any, monitors: list[CacheMonitor]) -> Any:
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not monitors or inside_cache_call.get():
            return await original(self, *args, **kwargs)
        stack = _stack_of(self)
        t0 = _perf()
        try:
            results = await original(self, *args, **kwargs)
        except Exception:
            _report_pipeline(monitors, self, stack, None, _perf() - t0, True)
            raise
        _report_pipeline(monitors, self, stack, results, _perf() - t0, False)
        return results

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute


def _stack_of(pipe: Any) -> list[Any]:
    """The queued commands as ``(args, options)`` pairs (redis-py keeps them so; a
    command object with ``.args`` in some versions)."""
    out = []
    for item in list(getattr(pipe, "command_stack", ()) or ()):
        if isinstance(item, tuple) and len(item) == 2:
            out.append(item)
        else:
            out.append((tuple(getattr(item, "args", ())), {}))
    return out


def _targets() -> list[tuple[type, str, Any]]:
    """(class, attribute, wrapper factory) for every redis-py class we wrap."""
    import redis
    import redis.asyncio

    return [(redis.Redis, "execute_command", _command_wrapper),
            (redis.client.Pipeline, "execute", _pipeline_wrapper),
            (redis.asyncio.Redis, "execute_command", _async_command_wrapper),
            (redis.asyncio.client.Pipeline, "execute", _async_pipeline_wrapper)]


def instrument_redis(monitor: CacheMonitor, client: Any = None) -> None:
    """Report every redis-py client's cache commands to ``monitor`` (or only
    ``client``'s). Idempotent: a monitor is added once."""
    if client is not None:
        own: list[CacheMonitor] = [monitor]
        is_async = _is_async(client)
        command = _async_command_wrapper if is_async else _command_wrapper
        original = type(client).execute_command
        original = _ORIGINALS.get((type(client), "execute_command"), original)
        bound = command(original, own)
        client.execute_command = bound.__get__(client)
        return
    if monitor not in _CLASS_MONITORS:
        _CLASS_MONITORS.append(monitor)
    for cls, attr, factory in _targets():
        if (cls, attr) in _ORIGINALS:
            continue
        original = cls.__dict__.get(attr) or getattr(cls, attr)
        _ORIGINALS[(cls, attr)] = original
        setattr(cls, attr, factory(original, _CLASS_MONITORS))


def uninstrument_redis(monitor: CacheMonitor | None = None) -> None:
    """Stop reporting to ``monitor`` (None: to any, and restore redis-py's classes)."""
    if monitor is not None and monitor in _CLASS_MONITORS:
        _CLASS_MONITORS.remove(monitor)
    if monitor is None or not _CLASS_MONITORS:
        _CLASS_MONITORS.clear()
        for (cls, attr), original in list(_ORIGINALS.items()):
            setattr(cls, attr, original)
        _ORIGINALS.clear()


def _is_async(client: Any) -> bool:
    try:
        import redis.asyncio
    except ImportError:
        return False
    return isinstance(client, redis.asyncio.Redis)
