"""Request fuzzing through the Django middleware (Django's own WSGI handler via the
test client): status, body and headers apart from pulsegate's are the same with and
without pulsegate, and nothing inside pulsegate fails (see ``tests/fuzz_requests.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from hypothesis import given
from hypothesis import strategies as st

from fuzz_requests import fuzz_settings, gate_options, is_pulsegate_header, requests
from pulsegate.django import get_gate
from pulsegate.django.gate import set_gate

MW = ["pulsegate.django.PulseGateMiddleware"]


@pytest.fixture(autouse=True, scope="module")
def _one_gate_for_all_examples() -> Iterator[None]:
    """The gate outlives the examples (state accumulates, as in a server); it is built
    from this module's settings on first use and dropped afterwards."""
    set_gate(None)
    yield
    set_gate(None)


def meta_for(req: dict[str, Any]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for name, value in req["headers"]:
        key = name.upper().decode("latin-1").replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH", "HOST", "COOKIE"):
            continue  # the test client writes these itself
        key = "HTTP_" + key
        text = value.decode("latin-1")
        meta[key] = f"{meta[key]},{text}" if key in meta else text
    if req["client"]:
        meta["REMOTE_ADDR"] = req["client"][0]
    return meta


def answer(req: dict[str, Any], path: str) -> tuple[Any, ...]:
    try:
        r = Client(raise_request_exception=False).generic(
            req["method"], path, data=b"".join(req["body"]),
            content_type="application/octet-stream", QUERY_STRING=req["query"].decode("latin-1"),
            **meta_for(req))
    except Exception as exc:  # the test client refusing the request: must be the same
        return ("client refused", type(exc).__name__)
    return (r.status_code, r.content,
            [(k, v) for k, v in r.items() if not is_pulsegate_header(k)])


@fuzz_settings(80)
@given(requests(), st.sampled_from(["/echo/", "/books/1/", "/boom/", None]))
def test_django_responses_identical_and_no_internal_error(req: dict[str, Any],
                                                           route: str | None) -> None:
    path = route or req["path"]
    with override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=[], DEBUG=False):
        bare = answer(req, path)
    with override_settings(ROOT_URLCONF="pg_adapter_urls", MIDDLEWARE=MW, DEBUG=False,
                           PULSEGATE=gate_options()):
        gated = answer(req, path)
        stats = get_gate().stats()
    assert gated == bare
    assert stats["internal_errors"] == 0, stats.get("internal_errors_by_kind")
