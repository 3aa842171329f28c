"""Who is the client? The key a rate-limit bucket and a behaviour profile hang on.

Three kinds of key (option ``client_key``):

* ``"ip"`` (default): the peer address. Forwarding headers are read **only** when the
  direct peer is inside one of ``trusted_proxies`` (CIDRs), and only the headers named
  by ``forwarded_header`` -- what *your* proxies write. A header they do not write
  reaches the app exactly as the client sent it, so it is never read: with the default
  ``x-forwarded-for`` a client's own ``Forwarded: for=<anything>`` or ``X-Real-IP`` is
  ignored, whatever it says.

  List headers (``x-forwarded-for``, ``forwarded``: every proxy appends the address it
  saw) are walked from the right, skipping trusted hops; the first untrusted address
  is the client. Everything left of it was written by the client and may be forged, so
  a spoofed header can never buy a fresh bucket: a forger's own hop is the right-most
  untrusted one. Single-address headers (``x-real-ip``, ``cf-connecting-ip``,
  ``true-client-ip``: the proxy *sets* them) hold one address, the client's.

  ``forwarded_header`` may be a list in hop order -- outermost proxy first, the one
  next to the app last -- when proxies in a chain write different headers (a CDN
  setting ``cf-connecting-ip`` in front of a load balancer appending
  ``x-forwarded-for``: ``["cf-connecting-ip", "x-forwarded-for"]``). The walk starts at
  the last header, whose right-most entry is the address the proxy next to the app
  saw; if that is a trusted proxy, the previous header says whom *that* proxy saw, and
  so on. Only the first (outermost) header is walked over several entries.

  An entry that is not an IP address (``unknown``, ``_hidden``, garbage) or a header
  the proxy should have written but did not stops the walk: the key is the last
  address known for sure (the proxy that handed the request over). Addresses are
  normalised (``::ffff:1.2.3.4`` is ``1.2.3.4``; one spelling per IPv6 address), so one
  client cannot hold several buckets by re-spelling its address.
* ``"header:<name>"``: a request header such as an API key (falls back to the IP key
  when absent, so a client cannot dodge its bucket by omitting the header). The value
  is kept only as its BLAKE2b-128 digest (``h:<32 hex digits>``): such a header is
  usually a credential, and client keys are exported (the dashboard's throttled
  clients, the persisted penalties, Redis key names).
* a callable ``(RequestInfo) -> str | None`` (None also falls back to the IP key); a
  value longer than ``MAX_KEY`` characters is replaced by its digest.

Digests are stable across processes and restarts (persisted penalties still find
their client), and keep per-client memory independent of what a client sends.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.records import RequestInfo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyFunc = Callable[[RequestInfo], "str | None"]

#: Key used when no address is known at all (a unix socket, a test client).
UNKNOWN = "ip:unknown"
#: Headers a proxy appends to (one entry per hop) ...
LIST_HEADERS = ("x-forwarded-for", "forwarded")
#: ... and headers it sets to the one address it saw.
SINGLE_HEADERS = ("x-real-ip", "cf-connecting-ip", "true-client-ip")
FORWARDED_HEADERS = LIST_HEADERS + SINGLE_HEADERS
#: At most this many hops are read from the right of a list header (a proxy chain is
#: short; a client can send thousands of entries).
MAX_HOPS = 32
#: Longest string read as an address (an IPv6 address with a zone is at most ~60):
#: a longer one is not one, and is not cached -- the cache's keys stay small.
MAX_ADDRESS = 64
#: Parameters read of one ``Forwarded`` element (RFC 7239 defines four: for, by, host,
#: proto); past them the element is not read -- a client-written one may hold thousands.
MAX_PAIRS = 8
#: Longer header / callable keys are stored as a digest.
MAX_KEY = 64


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or bare addresses) to networks; raises ``ValueError`` on a bad one."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def parse_forwarded_header(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"x-forwarded-for"``, ``"forwarded, x-forwarded-for"`` or a list, to a tuple of
    known header names in hop order; raises ``ValueError`` naming what is allowed."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(v).strip().lower() for v in items if str(v).strip())
    bad = [n for n in names if n not in FORWARDED_HEADERS]
    if not names or bad or len(names) > 4:
        raise ValueError("forwarded_header must name 1-4 of " + ", ".join(FORWARDED_HEADERS)
                         + " (a list in hop order, outermost proxy first)")
    return names


def _strip(addr: str) -> str:
    """An address as written in XFF/Forwarded: drop quotes, brackets and a port."""
    a = addr.strip().strip('"')
    if a.startswith("["):  # [v6]:port
        end = a.find("]")
        return a[1:end] if end > 0 else a[1:]
    if a.count(":") == 1:  # v4:port
        return a.split(":", 1)[0]
    return a


def header_entries(name: str, value: str) -> list[str]:
    """The addresses written in header ``name``, left (first hop) to right (nearest
    proxy); at most the last ``MAX_HOPS`` of a list header.

    >>> header_entries("forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"')
    ['192.0.2.60', '2001:db8::1']
    >>> header_entries("x-forwarded-for", "6.6.6.6, 203.0.113.5:443")
    ['6.6.6.6', '203.0.113.5']
    """
    if name not in LIST_HEADERS:
        return [_strip(value)]
    parts = value.rsplit(",", MAX_HOPS)
    if len(parts) > MAX_HOPS:
        parts = parts[1:]
    if name == "x-forwarded-for":
        return [_strip(a) for a in parts if a.strip()]
    out = []
    for element in parts:  # one hop each; an element without for= is an unknown hop
        found = ""
        for pair in element.split(";", MAX_PAIRS)[:MAX_PAIRS]:
            key, _, v = pair.partition("=")
            if key.strip().lower() == "for":
                found = _strip(v)
        out.append(found)
    return out


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class ClientKeyResolver:
    """Turns a :class:`RequestInfo` into a client key string (``ip:...``, ``h:...``,
    ``k:...``). Address parsing and trust decisions are cached (bounded) because the
    set of addresses a server sees per second is small and ``ipaddress`` parsing costs
    microseconds."""

    __slots__ = ("_cache", "_func", "_header", "forwarded", "trusted")

    def __init__(self, mode: str | KeyFunc = "ip", trusted_proxies: Iterable[str] = (),
                 forwarded_header: str | Iterable[str] = "x-forwarded-for") -> None:
        self.trusted = parse_networks(trusted_proxies)
        self.forwarded = parse_forwarded_header(forwarded_header)
        self._header: str | None = None
        self._func: KeyFunc | None = None
        if callable(mode):
            self._func = mode
        elif mode.startswith("header:"):
            self._header = mode[len("header:"):].strip().lower()
        elif mode != "ip":
            raise ValueError(f"client_key must be 'ip', 'header:<name>' or a callable, not {mode!r}")
        # bounded: forged chains can hold arbitrary strings
        self._cache: BoundedLRU[str, tuple[str | None, bool]] = BoundedLRU(4096)

    def address(self, addr: str) -> tuple[str | None, bool]:
        """``(canonical address or None if it is not one, is it a trusted proxy)``."""
        if len(addr) > MAX_ADDRESS:  # not an address: never kept (request-sized)
            return None, False
        hit = self._cache.get(addr)
        if hit is not None:
            return hit
        try:
            ip = ipaddress.ip_address(addr)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            out: tuple[str | None, bool] = (str(ip), any(ip in net for net in self.trusted))
        except ValueError:
            out = (None, False)
        self._cache.put(addr, out)
        return out

    def is_trusted(self, addr: str) -> bool:
        return self.address(addr)[1]

    def client_ip(self, info: RequestInfo) -> str | None:
        peer = info.client_ip
        if peer is None or not self.trusted:
            return peer
        known, trusted = self.address(peer)
        if not trusted:
            return peer
        # Walk back from the app, one hop at a time: the innermost proxy's header
        # first, right to left. Each hop of a chain of several headers wrote one entry
        # (the address it saw); the outermost header is walked while its entries are
        # trusted proxies (every proxy of that tier appends to it).
        known = known or peer
        headers = info.headers
        chain = self.forwarded
        parsed: dict[str, list[str]] = {}
        for depth, name in enumerate(reversed(chain)):
            entries = parsed.get(name)
            if entries is None:
                value = headers.get(name)
                entries = parsed[name] = header_entries(name, value) if value else []
            outermost = depth == len(chain) - 1
            while True:
                if not entries:
                    return known  # not written (or used up): nothing beyond is known
                raw = entries.pop()
                addr, trusted = self.address(raw) if raw else (None, False)
                if addr is None:
                    return known  # "unknown", "_hidden", garbage: stop at what we know
                known = addr
                if not trusted:
                    return addr
                if not outermost:
                    break
        return known  # every hop a trusted proxy: the left-most one is the client

    def __call__(self, info: RequestInfo) -> str:
        if self._func is not None:
            key = self._func(info)
            if key:
                key = str(key)
                return "k:" + (key if len(key) <= MAX_KEY else "#" + _digest(key))
        elif self._header is not None:
            value = info.headers.get(self._header)
            if value:
                return "h:" + _digest(value)
        ip = self.client_ip(info)
        return "ip:" + ip if ip else UNKNOWN


def forwarded_chain(headers: Any, names: Iterable[str] = ("x-forwarded-for",)) -> list[str]:
    """Addresses written in the headers ``names`` (hop order), left (first hop) to
    right (nearest proxy): for logs and tests; the resolver walks them itself."""
    out: list[str] = []
    for name in names:
        value = headers.get(name)
        if value:
            out.extend(header_entries(name, value))
    return out
