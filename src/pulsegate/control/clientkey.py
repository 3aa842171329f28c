"""Who is the client? The key a rate-limit bucket and a behaviour profile hang on.

Three kinds of key (option ``client_key``):

* ``"ip"`` (default): the peer address. ``X-Forwarded-For`` / ``Forwarded`` are read
  **only** when the direct peer is inside one of ``trusted_proxies`` (CIDRs); then the
  list is walked from the right, skipping trusted hops, and the first untrusted address
  is the client. Everything left of it was written by the client and may be forged, so
  a spoofed header can never buy a fresh bucket: a forger's own proxy hop is the
  right-most untrusted one.
* ``"header:<name>"``: a request header such as an API key (falls back to the IP key
  when absent, so a client cannot dodge its bucket by omitting the header).
* a callable ``(RequestInfo) -> str | None`` (None also falls back to the IP key).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from pulsegate.records import RequestInfo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyFunc = Callable[[RequestInfo], "str | None"]

#: Key used when no address is known at all (a unix socket, a test client).
UNKNOWN = "ip:unknown"


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or bare addresses) to networks; raises ``ValueError`` on a bad one."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def _strip(addr: str) -> str:
    """An address as written in XFF/Forwarded: drop quotes, brackets and a port."""
    a = addr.strip().strip('"')
    if a.startswith("["):  # [v6]:port
        end = a.find("]")
        return a[1:end] if end > 0 else a[1:]
    if a.count(":") == 1:  # v4:port
        return a.split(":", 1)[0]
    return a


def forwarded_chain(headers: Any) -> list[str]:
    """Addresses from ``Forwarded: for=`` (RFC 7239) or else ``X-Forwarded-For``,
    left (original client) to right (nearest proxy)."""
    fwd = headers.get("forwarded")
    out: list[str] = []
    if fwd:
        for element in fwd.split(","):
            for pair in element.split(";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for" and value:
                    out.append(_strip(value))
        if out:
            return out
    xff = headers.get("x-forwarded-for")
    if xff:
        out = [_strip(a) for a in xff.split(",") if a.strip()]
    return out


class ClientKeyResolver:
    """Turns a :class:`RequestInfo` into a client key string (``ip:...``, ``h:...``,
    ``k:...``). Trust decisions per peer address are cached (bounded) because the set
    of proxies a server sees is tiny and ``ipaddress`` parsing costs microseconds."""

    __slots__ = ("_cache", "_func", "_header", "trusted")

    def __init__(self, mode: str | KeyFunc = "ip", trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = parse_networks(trusted_proxies)
        self._header: str | None = None
        self._func: KeyFunc | None = None
        if callable(mode):
            self._func = mode
        elif mode.startswith("header:"):
            self._header = mode[len("header:"):].strip().lower()
        elif mode != "ip":
            raise ValueError(f"client_key must be 'ip', 'header:<name>' or a callable, not {mode!r}")
        self._cache: dict[str, bool] = {}

    def is_trusted(self, addr: str) -> bool:
        hit = self._cache.get(addr)
        if hit is not None:
            return hit
        try:
            ip = ipaddress.ip_address(addr)
            ok = any(ip in net for net in self.trusted)
        except ValueError:
            ok = False
        if len(self._cache) > 4096:  # bounded: forged chains can hold arbitrary strings
            self._cache.clear()
        self._cache[addr] = ok
        return ok

    def client_ip(self, info: RequestInfo) -> str | None:
        peer = info.client_ip
        if peer is None or not self.trusted or not self.is_trusted(peer):
            return peer
        chain = forwarded_chain(info.headers)
        # Right to left: the first hop our proxies did not vouch for is the client.
        for addr in reversed(chain):
            if not self.is_trusted(addr):
                return addr
        return chain[0] if chain else peer

    def __call__(self, info: RequestInfo) -> str:
        if self._func is not None:
            key = self._func(info)
            if key:
                return "k:" + str(key)
        elif self._header is not None:
            value = info.headers.get(self._header)
            if value:
                return "h:" + value
        ip = self.client_ip(info)
        return "ip:" + ip if ip else UNKNOWN
