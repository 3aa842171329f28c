"""Control: the adaptive rate limiter and the Q-learning concurrency allocator.

Pure Python, no framework imports; Redis is imported only when a ``redis://`` storage
is configured. See ``docs/control.md``.
"""

from pulsegate.control.allocator import ConcurrencyAllocator, Ticket, Waiter
from pulsegate.control.breaker import CircuitBreaker
from pulsegate.control.clientkey import ClientKeyResolver
from pulsegate.control.ratelimit import AdaptiveRateLimiter, Decision, Rule, parse_rate
from pulsegate.control.storage import MemoryStorage, RedisStorage

__all__ = [
    "AdaptiveRateLimiter",
    "CircuitBreaker",
    "ClientKeyResolver",
    "ConcurrencyAllocator",
    "Decision",
    "MemoryStorage",
    "RedisStorage",
    "Rule",
    "Ticket",
    "Waiter",
    "parse_rate",
]
