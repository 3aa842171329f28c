"""The safety rules on their own: fail-closed credential headers (the names real
gateways use and a generated set), read from an ASGI scope and from a WSGI environ."""

from __future__ import annotations

import pytest
from credential_names import INNOCENT, KNOWN, generated

from pulsegate.http import ASGIHeaders, EnvironHeaders
from pulsegate.records import NoHeaders
from pulsegate.respcache.rules import request_key, request_refusal

VARY = ("accept", "accept-encoding", "accept-language")


def asgi(headers: dict[str, str]) -> ASGIHeaders:
    return ASGIHeaders([(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])


def environ(headers: dict[str, str], **cgi: str) -> EnvironHeaders:
    env = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return EnvironHeaders(({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **env, **cgi},))


NAMES = [*KNOWN, *generated(400)]


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
def test_the_headers_of_ordinary_requests_are_not_taken_for_credentials(view: object) -> None:
    headers = view({name: "1" for name in INNOCENT})  # type: ignore[operator]
    assert request_refusal(headers, VARY) is None


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
