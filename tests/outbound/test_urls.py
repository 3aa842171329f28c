"""What an outbound URL is reported as: fail-closed -- only route literals survive."""

from __future__ import annotations

import random
import string

from pulsegate.outbound.urls import fold_path, upstream_of


def test_route_literals_stay_and_everything_else_folds() -> None:
    assert fold_path("/v1/customers/cus_NffrFeUfNV2Hib/sources") == "/v1/customers/{id}/sources"
    assert fold_path("/users/jo.smith@example.com/inbox") == "/users/{id}/inbox"
    assert fold_path("/reports/2024-01-31/daily.csv") == "/reports/{id}/daily.csv"
    assert fold_path("/search/caf%C3%A9") == "/search/{id}"
    assert fold_path("/api/v2.1/items/42") == "/api/v2.1/items/{id}"
    assert fold_path("/repos/octo-org/hello_world") == "/repos/octo-org/hello_world"


def test_no_generated_id_survives() -> None:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "_-"
    for _ in range(500):
        ident = "".join(rng.choices(alphabet, k=rng.randrange(4, 30)))
        if not any(c.isdigit() for c in ident):
            continue  # an all-letter word is a literal by the rule
        _, path = upstream_of(f"https://api.example.com/things/{ident}/parts?x={ident}")
        assert ident not in path and path == "/things/{id}/parts"


def test_urls_of_any_length_fold_in_linear_time_to_a_bounded_label() -> None:
    """Attack probe: an outbound URL built from a user's input (a webhook address, a
    search) may be of any length; its host used to be kept whole in the upstream label
    (a monitor's key, a metric's label)."""
    from growth import assert_linear

    assert_linear(upstream_of, lambda n: f"https://{'h' * n}.example/{'p/' * n}?q={'x' * n}")
    assert_linear(fold_path, lambda n: "/a" * n + "/" + "9" * n)
    label, path = upstream_of(f"https://{'h' * 100_000}.example/users/1")
    assert (label, path) == ("https://(long host)", "/users/{id}")
    assert upstream_of("https://" + "h" * 253 + ":8443/x")[0] == "https://" + "h" * 253 + ":8443"
    assert len(upstream_of("a" * 100_000 + "://host/x")[0]) < 300

