"""IETF rate-limit response fields (draft-ietf-httpapi-ratelimit-headers, structured
fields syntax, RFC 8941) and ``Retry-After`` (RFC 9110).

    RateLimit-Policy: "default";q=100;w=60      quota q per window w seconds
    RateLimit: "default";r=42;t=18             r units remaining, t seconds to full reset
    Retry-After: 3                              (429 and 503 only) whole seconds

Values are non-negative integers, as the structured-field grammar requires; ``t`` and
``Retry-After`` are rounded up so a client that waits that long is never refused for a
fraction of a second.
"""

from __future__ import annotations

import math


def policy_name(name: str) -> str:
    """A policy name as an sf-string (quotes and backslashes escaped, ASCII only)."""
    clean = "".join(ch for ch in name if 32 <= ord(ch) < 127)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ceil_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - 1e-9))


def ratelimit_headers(policy: str, quota: int, window: float, remaining: int,
                      reset_after: float, retry_after: float | None = None
                      ) -> list[tuple[str, str]]:
    """The ``RateLimit`` / ``RateLimit-Policy`` pair, plus ``Retry-After`` when given."""
    out = [
        ("ratelimit-policy", f"{policy};q={max(0, quota)};w={max(1, ceil_seconds(window))}"),
        ("ratelimit", f"{policy};r={max(0, remaining)};t={ceil_seconds(reset_after)}"),
    ]
    if retry_after is not None:
        out.append(("retry-after", str(max(1, ceil_seconds(retry_after)))))
    return out
