"""Which Redis commands are cache reads, writes and deletes, of which keys, with which
time to live -- read off the command's arguments as redis-py sends them (pure: the
redis-py hooks and their tests share it).

>>> classify(("GET", "user:1"))
('read', ('user:1',), -1.0)
>>> classify(("SET", "user:1", b"x", "EX", 60))
('write', ('user:1',), 60.0)
>>> classify(("SET", "user:1", b"x"))
('write', ('user:1',), None)
>>> classify(("DEL", "a", "b"))
('delete', ('a', 'b'), -1.0)
>>> classify(("PING",)) is None
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["classify", "value_size"]

UNKNOWN = -1.0
_READ_ONE = frozenset({"GET", "GETEX", "GETDEL", "HGET", "HGETALL", "HMGET"})
_DELETE = frozenset({"DEL", "UNLINK"})


def _seconds(value: Any, scale: float = 1.0) -> float:
    try:
        return float(value) * scale
    except (TypeError, ValueError):
        return UNKNOWN


def _set_ttl(args: tuple[Any, ...]) -> float | None:
    """TTL of ``SET key value [EX s | PX ms | EXAT | PXAT | KEEPTTL] ...``."""
    i = 3
    while i < len(args):
        word = args[i]
        word = word.upper() if isinstance(word, str) else word
        if word == "EX" and i + 1 < len(args):
            return _seconds(args[i + 1])
        if word == "PX" and i + 1 < len(args):
            return _seconds(args[i + 1], 0.001)
        if word in ("EXAT", "PXAT", "KEEPTTL", b"EXAT", b"PXAT", b"KEEPTTL"):
            return UNKNOWN
        i += 1
    return None


def classify(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...], float | None] | None:
    """``(op, keys, ttl)`` of a command (op ``read``, ``write`` or ``delete``; ``ttl``
    in seconds, None for no expiry, -1 unknown), or None for anything else."""
    if not args:
        return None
    name = args[0]
    if not isinstance(name, str):
        if not isinstance(name, bytes):
            return None
        name = name.decode("ascii", "replace")
    name = name.upper()
    n = len(args)
    if name in _READ_ONE and n >= 2:
        return "read", (args[1],), UNKNOWN
    if name == "MGET":
        return "read", args[1:], UNKNOWN
    if name == "SET" and n >= 3:
        return "write", (args[1],), _set_ttl(args)
    if name == "SETEX" and n >= 4:
        return "write", (args[1],), _seconds(args[2])
    if name == "PSETEX" and n >= 4:
        return "write", (args[1],), _seconds(args[2], 0.001)
    if name in ("SETNX", "HSET", "HMSET") and n >= 3:
        return "write", (args[1],), None if name == "SETNX" else UNKNOWN
    if name == "MSET":
        return "write", args[1::2], None
    if name in _DELETE:
        return "delete", args[1:], UNKNOWN
    return None


def value_size(value: Any) -> int | None:
    """Bytes of a value as Redis holds it, when that is cheap to tell (bytes, str)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
    return None


def values_written(name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values a write command carries, in the order of its keys."""
    name = name.upper()
    if name in ("SET", "SETNX"):
        return (args[2],)
    if name in ("SETEX", "PSETEX"):
        return (args[3],)
    if name == "MSET":
        return args[2::2]
    return ()
