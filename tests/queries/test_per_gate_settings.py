"""Two apps in one process keep their own query settings: the second gate built does not
override the first's (``capture_call_sites``, ``fingerprint_cache_size``)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from pulsegate.engine import PulseGate
from pulsegate.records import RequestInfo
from pulsegate.sqlalchemy import instrument, uninstrument

pytestmark = pytest.mark.pulsegate(nplusone="off")


def call_sites_seen(gate: PulseGate, run: object) -> list[str | None]:
    ctx = gate.begin(RequestInfo("GET", "/x", route="/x"))
    assert ctx is not None
    assert callable(run)
    run()
    sites = [q.call_site for q in ctx.queries or ()]
    gate.response_headers(ctx, 200)
    gate.finish(ctx, 200)
    return sites


def test_a_second_gate_does_not_change_the_first_gates_call_site_setting() -> None:
    engine = create_engine("sqlite://")
    instrument(engine)
    try:
        def run() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        first = PulseGate(capture_call_sites=True)
        second = PulseGate(capture_call_sites=False)  # built after: must not win
        sites_first = call_sites_seen(first, run)
        sites_second = call_sites_seen(second, run)
        assert sites_first and all(s is not None and "test_per_gate_settings.py" in s
                                   for s in sites_first)
        assert sites_second and all(s is None for s in sites_second)
        first.close()
        second.close()
    finally:
        uninstrument(engine)


def test_each_gate_has_its_own_fingerprint_cache_of_its_own_size() -> None:
    first = PulseGate(fingerprint_cache_size=7)
    second = PulseGate(fingerprint_cache_size=3)
    a, b = first.queries.detector.cache, second.queries.detector.cache
    assert a is not b
    assert a.maxsize == 7 and b.maxsize == 3
    for i in range(10):
        a.get(f"SELECT {i}")
    assert len(a) == 7 and len(b) == 0
    first.close()
    second.close()
