from __future__ import annotations

import sys
from typing import Any

import pytest

from pulsegate.config import Config, ConfigError
from pulsegate.control.clientkey import (
    MAX_HOPS,
    MAX_KEY,
    MAX_PAIRS,
    ClientKeyResolver,
    forwarded_chain,
    header_entries,
    parse_forwarded_header,
)
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
    assert forwarded_chain(h, ["forwarded"]) == ["192.0.2.60", "2001:db8::1", "10.1.1.1"]
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"], "forwarded")
    r = RequestInfo("GET", "/", None, "10.9.9.9", h)
    assert keys(r) == "ip:2001:db8::1"
    # the default proxy writes X-Forwarded-For: a Forwarded header is the client's own
    assert ClientKeyResolver("ip", ["10.0.0.0/8"])(r) == "ip:10.9.9.9"


def test_only_the_header_the_proxy_writes_is_read() -> None:
    h = {"forwarded": "for=198.51.100.1", "x-forwarded-for": "198.51.100.2, 203.0.113.5",
         "x-real-ip": "198.51.100.3", "cf-connecting-ip": "198.51.100.4",
         "true-client-ip": "198.51.100.5"}
    expect = {"x-forwarded-for": "203.0.113.5", "forwarded": "198.51.100.1",
              "x-real-ip": "198.51.100.3", "cf-connecting-ip": "198.51.100.4",
              "true-client-ip": "198.51.100.5"}
    for name, addr in expect.items():
        keys = ClientKeyResolver("ip", ["10.0.0.0/8"], name)
        assert keys(info("10.0.0.2", **{k.replace("-", "_"): v for k, v in h.items()})) == "ip:" + addr


def test_a_header_the_proxy_did_not_write_keys_on_the_proxy() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"], "x-real-ip")
    assert keys(info("10.0.0.2", x_forwarded_for="198.51.100.9")) == "ip:10.0.0.2"


def test_hop_order_list_reads_one_entry_per_inner_hop() -> None:
    """CDN (sets cf-connecting-ip) -> load balancer (appends X-Forwarded-For) -> app."""
    keys = ClientKeyResolver("ip", ["10.0.0.0/8", "172.64.0.0/13"],
                             ["cf-connecting-ip", "x-forwarded-for"])
    got = keys(info("10.0.0.2", cf_connecting_ip="203.0.113.5",
                    x_forwarded_for="6.6.6.6, 172.64.0.9"))
    assert got == "ip:203.0.113.5"
    # someone reaching the load balancer around the CDN: the LB saw them, not a CDN
    got = keys(info("10.0.0.2", cf_connecting_ip="6.6.6.6", x_forwarded_for="198.51.100.7"))
    assert got == "ip:198.51.100.7"


def test_unusable_entries_stop_at_the_last_known_hop() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    for bad in ("unknown", "_hidden", "999.1.1.1", "x" * 5000):
        assert keys(info("10.0.0.2", x_forwarded_for=f"6.6.6.6, {bad}, 10.0.0.7")) == "ip:10.0.0.7"
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"], "forwarded")
    assert keys(info("10.0.0.2", forwarded="for=6.6.6.6, by=10.0.0.1")) == "ip:10.0.0.2"


def test_addresses_have_one_spelling() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    for spelled in ("203.0.113.5", "203.0.113.5:8080", "::ffff:203.0.113.5",
                    "[::ffff:203.0.113.5]:1", '"203.0.113.5"'):
        assert keys(info("10.0.0.2", x_forwarded_for=spelled)) == "ip:203.0.113.5"
    for spelled in ("2001:db8::1", "2001:DB8:0:0:0:0:0:1", "[2001:db8:0::1]:443"):
        assert keys(info("10.0.0.2", x_forwarded_for=spelled)) == "ip:2001:db8::1"
    assert keys(info("::ffff:10.0.0.2", x_forwarded_for="203.0.113.5")) == "ip:203.0.113.5"


def test_huge_chains_are_read_from_the_right_only() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    chain = ", ".join(["6.6.6.6"] * 200_000 + ["10.0.0.9"] * 40)
    # more trusted hops than MAX_HOPS: the left-most one read is the answer, and
    # nothing left of the last MAX_HOPS entries is parsed
    assert keys(info("10.0.0.2", x_forwarded_for=chain)) == "ip:10.0.0.9"
    assert len(header_entries("x-forwarded-for", chain)) == MAX_HOPS


def lines_run(fn: Any, *args: Any) -> int:
    """Python lines ``fn`` runs (a cost count that does not depend on the machine)."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(None)
    return count


def test_a_forwarded_element_is_read_in_a_bounded_number_of_steps() -> None:
    """Attack probe (hsec6): the client writes the first element of ``Forwarded`` and a
    trusted proxy passes it on. Each of its ``;`` pairs was a Python loop step: a 16 kB
    header (a server's usual limit) of ``;`` cost ≈ 3 ms a request, past the ≈ 1 ms any
    input may cost. Now at most MAX_PAIRS parameters of an element are read (RFC 7239
    has four); a ``for=`` past them is an unknown hop, which stops the walk."""
    small = lines_run(header_entries, "forwarded", "for=6.6.6.6;" * MAX_PAIRS + ", for=10.0.0.9")
    huge = lines_run(header_entries, "forwarded", "for=6.6.6.6;" * 20_000 + ", for=10.0.0.9")
    assert huge == small
    late = "proto=http;" * MAX_PAIRS + "for=6.6.6.6"
    assert header_entries("forwarded", f"{late}, for=10.0.0.9") == ["", "10.0.0.9"]
    assert header_entries("forwarded", "for=1.2.3.4;proto=https;by=10.0.0.1;host=a") == [
        "1.2.3.4"]


def test_header_keys_are_digests_and_long_callable_keys_too() -> None:
    keys = ClientKeyResolver("header:x-api-key")
    secret = keys(info("1.2.3.4", x_api_key="sk_live_abc"))
    assert secret.startswith("h:") and "sk_live" not in secret and len(secret) == 2 + 32
    long_a = keys(info("1.2.3.4", x_api_key="a" * 100_000))
    long_b = keys(info("1.2.3.4", x_api_key="a" * 99_999 + "b"))
    assert long_a != long_b and len(long_a) == len(long_b) == 2 + 32
    assert long_a == keys(info("9.9.9.9", x_api_key="a" * 100_000))  # stable
    assert ClientKeyResolver(lambda i: "t" * MAX_KEY)(info("1.2.3.4")) == "k:" + "t" * MAX_KEY
    assert len(ClientKeyResolver(lambda i: "t" * 10_000)(info("1.2.3.4"))) == 2 + 1 + 32


@pytest.mark.parametrize("value", ["x-forwarded-host", "", [], ["forwarded"] * 5, "via",
                                   ["x-forwarded-for", "cookie"]])
def test_bad_forwarded_header_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="forwarded_header"):
        parse_forwarded_header(value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="forwarded_header"):
        Config(forwarded_header=value)


def test_forwarded_header_config_forms() -> None:
    assert Config().forwarded_header == ("x-forwarded-for",)
    assert Config(forwarded_header="X-Real-IP").forwarded_header == ("x-real-ip",)
    assert Config(forwarded_header="cf-connecting-ip, x-forwarded-for").forwarded_header == (
        "cf-connecting-ip", "x-forwarded-for")
    assert Config.from_mapping({"forwarded_header": ["forwarded"]}).forwarded_header == (
        "forwarded",)


def test_all_hops_trusted_uses_left_most() -> None:
    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    assert keys(info("10.0.0.2", x_forwarded_for="10.0.0.7, 10.0.0.3")) == "ip:10.0.0.7"


def test_header_key_and_fallback() -> None:
    keys = ClientKeyResolver("header:x-api-key")
    assert keys(info("1.2.3.4", x_api_key="abc")) == keys(info("5.6.7.8", x_api_key="abc"))
    assert keys(info("1.2.3.4", x_api_key="abc")).startswith("h:")
    assert keys(info("1.2.3.4")) == "ip:1.2.3.4"


def test_callable_key_and_unknown_peer() -> None:
    keys = ClientKeyResolver(lambda i: i.path.split("/")[1] or None)
    assert keys(RequestInfo("GET", "/tenant7/x", None, "1.2.3.4")) == "k:tenant7"
    assert keys(RequestInfo("GET", "/", None, None)) == "ip:unknown"


def test_bad_mode_rejected() -> None:
    with pytest.raises(ValueError, match="client_key"):
        ClientKeyResolver("cookie")


def test_forged_long_entries_leave_no_request_sized_strings_behind() -> None:
    """Attack probe: behind a trusted proxy, each request's X-Forwarded-For ends in a
    different 8 KiB string. The address cache (4096 entries) kept each one as its key:
    32 MiB held by one resolver. A string longer than any address is not one, and is
    not cached; the client is then the last address known (the proxy's peer)."""
    import tracemalloc

    keys = ClientKeyResolver("ip", ["10.0.0.0/8"])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):
            forged = f"{i:08d}" + "x" * 8_192
            assert keys(info("10.0.0.2", x_forwarded_for=f"6.6.6.6, {forged}")) == "ip:10.0.0.2"
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000, held  # 2 000 x 8 KiB = 16 MiB if the strings were kept
    scoped = "fe80::1%" + "e" * 20  # (a scoped IPv6 address is still one)
    assert keys(info("10.0.0.2", x_forwarded_for=scoped)) == "ip:" + scoped
