from __future__ import annotations

import pytest

from pulsegate.control.clientkey import ClientKeyResolver, forwarded_chain
from pulsegate.records import RequestInfo


class H(dict[str, str]):
    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name, default)


def info(peer: str | None, **headers: str) -> RequestInfo:
    return RequestInfo("GET", "/", None, peer, H({k.replace("_", "-"): v for k, v in headers.items()}))


def test_ip_ignores_forwarded_headers_without_trusted_proxies() -> None:
    keys = ClientKeyResolver("ip")
    assert keys(info("203.0.113.9", x_forwarded_for="1.2.3.4")) == "ip:203.0.113.9"


def test_untrusted_peer_cannot_spoof_xff() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    assert keys(info("198.51.100.7", x_forwarded_for="1.2.3.4")) == "ip:198.51.100.7"


def test_right_most_untrusted_address_is_the_client() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8", "192.168.0.0/16"])
    # The client forged "6.6.6.6"; its real address was appended by our proxies.
    got = keys(info("10.0.0.2", x_forwarded_for="6.6.6.6, 203.0.113.5, 192.168.1.1"))
    assert got == "ip:203.0.113.5"
    # Every forged value maps to the same bucket: spoofing buys nothing.
    for forged in ("1.1.1.1", "2.2.2.2", "garbage"):
        assert keys(info("10.0.0.2", x_forwarded_for=f"{forged}, 203.0.113.5")) == "ip:203.0.113.5"


def test_forwarded_header_rfc7239_with_ports_and_ipv6() -> None:
    h = H({"forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711", for=10.1.1.1:80'})
    assert forwarded_chain(h) == ["192.0.2.60", "2001:db8::1", "10.1.1.1"]
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    r = RequestInfo("GET", "/", None, "10.9.9.9", h)
    assert keys(r) == "ip:2001:db8::1"


def test_all_hops_trusted_uses_left_most() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    assert keys(info("10.0.0.2", x_forwarded_for="10.0.0.7, 10.0.0.3")) == "ip:10.0.0.7"


def test_header_key_and_fallback() -> None:
    keys = ClientKeyResolver("header:x-api-key")
    assert keys(info("1.2.3.4", x_api_key="abc")) == "h:abc"
    assert keys(info("1.2.3.4")) == "ip:1.2.3.4"


def test_callable_key_and_unknown_peer() -> None:
    keys = ClientKeyResolver(lambda i: i.path.split("/")[1] or None)
    assert keys(RequestInfo("GET", "/tenant7/x", None, "1.2.3.4")) == "k:tenant7"
    assert keys(RequestInfo("GET", "/", None, None)) == "ip:unknown"


def test_bad_mode_rejected() -> None:
    with pytest.raises(ValueError, match="client_key"):
        ClientKeyResolver("cookie")
