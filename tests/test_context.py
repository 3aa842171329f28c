from __future__ import annotations

import pytest

from pulsegate.context import RequestContext
from pulsegate.records import RequestInfo


def make() -> RequestContext:
    return RequestContext(RequestInfo("GET", "/x"), 0.0, None, None, 10)


def test_add_header_lower_cases_the_name_and_keeps_order() -> None:
    ctx = make()
    ctx.add_header("RateLimit", "default;r=1;t=1")
    ctx.add_header("retry-after", "2")
    assert ctx.extra_headers == [("ratelimit", "default;r=1;t=1"), ("retry-after", "2")]


@pytest.mark.parametrize("name", ["bad name", "x:y", "caf\u00e9", "x\r\ny", ""])
def test_add_header_rejects_a_name_that_is_not_a_token(name: str) -> None:
    ctx = make()
    with pytest.raises(ValueError, match="invalid header name"):
        ctx.add_header(name, "1")
    assert ctx.extra_headers is None


@pytest.mark.parametrize("value", ["a\r\nx-evil: 1", "caf\u00e9", "tab\there"])
def test_add_header_rejects_a_value_that_is_not_printable_ascii(value: str) -> None:
    ctx = make()
    with pytest.raises(ValueError, match="invalid value"):
        ctx.add_header("x-custom", value)


def test_set_endpoint_names_the_current_request_until_its_response_starts() -> None:
    import pulsegate
    from pulsegate.engine import PulseGate

    gate = PulseGate()
    assert pulsegate.set_endpoint("/outside") is False  # no request
    ctx = gate.begin(RequestInfo("GET", "/p/a/b", route="/{path:path}"))
    assert ctx is not None
    assert pulsegate.set_endpoint("/pages/BreadPage") is True
    gate.response_headers(ctx, 200)
    assert pulsegate.set_endpoint("/too-late") is False  # the model was chosen
    gate.finish(ctx)
    assert [e["endpoint"] for e in gate.endpoints()] == ["GET /pages/BreadPage"]
    for bad in ("", "x" * 201, "a\nb", None):
        with pytest.raises(ValueError):
            pulsegate.set_endpoint(bad)  # type: ignore[arg-type]
