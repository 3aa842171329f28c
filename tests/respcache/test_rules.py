"""The safety rules on their own: fail-closed request headers (the credential names real
gateways use, a generated set, names no word list recognises), the header sets of
ordinary clients and proxies, and the always-keyed host headers, read from an ASGI
scope and from a WSGI environ."""

from __future__ import annotations

import pytest
from credential_names import CLIENT_SETS, INNOCENT, KNOWN, PROXY_HEADERS, generated

from pulsegate import ConfigError
from pulsegate.config import Config
from pulsegate.http import ASGIHeaders, EnvironHeaders
from pulsegate.records import NoHeaders
from pulsegate.respcache.rules import ALWAYS_KEYED, request_key, request_refusal

VARY = ("accept", "accept-encoding", "accept-language")


def asgi(headers: dict[str, str]) -> ASGIHeaders:
    return ASGIHeaders([(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])


def environ(headers: dict[str, str], **cgi: str) -> EnvironHeaders:
    env = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return EnvironHeaders(({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **env, **cgi},))


# (Cloudflare's CF-Visitor, {"scheme": "https"} on every request, is a known header that
# the generator happens to spell too)
NAMES = [*KNOWN, *(n for n in generated(400) if n.lower() != "cf-visitor")]
#: Names no credential word list recognises, by which an app may still know its users.
UNWORDED = ("X-Ticket", "X-Who", "X-Wp-Nonce", "X-Caller", "X-Badge", "X-Pass", "Ticket")


@pytest.mark.parametrize("view", [asgi, environ])
def test_every_credential_like_header_is_refused_unless_keyed(view: object) -> None:
    refused = []
    for name in NAMES:
        headers = view({"accept": "*/*", name: "alice"})  # type: ignore[operator]
        if request_refusal(headers, VARY) is not None:
            refused.append(name)
    assert sorted(set(NAMES) - set(refused)) == []
    # named in vary, the header is part of the key instead: alice's key is not bob's
    for name in NAMES:
        # (a WSGI environ spells '_' and '-' alike: its names come back with '-')
        vary = (*VARY, name.lower() if view is asgi else name.lower().replace("_", "-"))
        alice = view({name: "alice"})  # type: ignore[operator]
        bob = view({name: "bob"})  # type: ignore[operator]
        assert request_refusal(alice, vary) is None
        assert request_key("GET", "/me", "", alice, vary) != request_key("GET", "/me", "", bob,
                                                                         vary)


@pytest.mark.parametrize("view", [asgi, environ])
def test_a_header_the_cache_does_not_know_refuses_the_request_unless_configured(
        view: object) -> None:
    for name in UNWORDED:
        headers = view({"accept": "*/*", name: "alice"})  # type: ignore[operator]
        assert request_refusal(headers, VARY) == name.lower()
        low = name.lower()
        assert request_refusal(headers, (*VARY, low)) is None  # keyed by vary (per value)
        assert request_refusal(headers, frozenset({*VARY, low})) is None  # or ignored


@pytest.mark.parametrize("view", [asgi, environ])
def test_ordinary_clients_behind_ordinary_proxies_are_cached(view: object) -> None:
    """The trade-off of refusing every header the cache does not know: 7 of the 56
    client x proxy header sets are refused -- every one behind Fly.io, whose
    ``fly-*`` headers are not in the list (held out) -- and none once the app names
    them in ``response_cache_ignore``. Of the 54 ordinary header names, 53 are known."""
    refused = set()
    for client, names in CLIENT_SETS.items():
        for proxy, extra in PROXY_HEADERS.items():
            headers = view({n: "1" for n in (*names, *extra)})  # type: ignore[operator]
            if request_refusal(headers, VARY) is not None:
                refused.add((client, proxy))
    assert len(CLIENT_SETS) * len(PROXY_HEADERS) == 56
    assert refused == {(client, "fly.io") for client in CLIENT_SETS}
    fly = frozenset({*VARY, "fly-client-ip", "fly-forwarded-port", "fly-region",
                     "fly-request-id"})
    for names in CLIENT_SETS.values():
        headers = view({n: "1" for n in (*names, *PROXY_HEADERS["fly.io"])})  # type: ignore[operator]
        assert request_refusal(headers, fly) is None
    ordinary = view({name: "1" for name in INNOCENT})  # type: ignore[operator]
    assert request_refusal(ordinary, VARY) == "x-request-uuid"
    assert request_refusal(ordinary, frozenset({*VARY, "x-request-uuid"})) is None


@pytest.mark.parametrize("view", [asgi, environ])
def test_the_host_and_forwarded_host_always_key_the_entry(view: object) -> None:
    base = {"accept": "*/*", "host": "shop.example"}
    key = request_key("GET", "/", "", view(base), ())  # type: ignore[operator]
    for name in ALWAYS_KEYED:
        forged = view({**base, name: "evil.example"})  # type: ignore[operator]
        assert request_refusal(forged, VARY) is None
        assert request_key("GET", "/", "", forged, ()) != key


def test_ignore_refuses_a_credential_like_name() -> None:
    assert Config(response_cache_ignore=["Fly-Region"]).respcache.response_cache_ignore == (
        "fly-region",)
    for name in ("x-api-key", "X-Session-Token", "authorization"):
        with pytest.raises(ConfigError) as info:
            Config(response_cache_ignore=[name])
        assert info.value.key == "response_cache_ignore" and "response_cache_vary" in str(
            info.value)


def test_an_empty_credential_identifies_nobody() -> None:
    assert request_refusal(asgi({"x-session-token": ""}), VARY) is None
    assert request_refusal(asgi({"x-session-token": "t"}), VARY) == "x-session-token"


def test_a_server_that_authenticated_the_client_is_refused_and_cannot_be_keyed() -> None:
    for variable in ("REMOTE_USER", "AUTH_TYPE", "SSL_CLIENT_CERT", "SSL_CLIENT_S_DN"):
        headers = environ({}, **{variable: "alice"})
        reason = f"cgi:{variable.lower()}"
        assert request_refusal(headers, VARY) == reason
        assert request_refusal(headers, (*VARY, variable.lower(), "remote-user")) == reason


def test_headers_that_cannot_be_listed_are_refused() -> None:
    assert request_refusal(NoHeaders(), VARY) == "unlisted headers"


def test_the_rules_doctests_pass() -> None:
    import doctest

    from pulsegate import http
    from pulsegate.respcache import rules

    assert doctest.testmod(rules).failed == 0 and doctest.testmod(http).failed == 0


def test_the_targets_doctests_pass() -> None:
    import doctest

    from pulsegate.respcache import targets

    assert doctest.testmod(targets).failed == 0
