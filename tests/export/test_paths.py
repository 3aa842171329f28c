"""Request paths leave the process folded (``raw_paths=False``, the default): the
dashboard and the state file show a segment no route template spells as ``{*}``;
predictions and alerts carry the endpoint only. Logs: tests/export/test_logs.py."""

from __future__ import annotations

import doctest
import random
import string
from typing import Any

import httpx
import pytest
from exportkit import SECRET, FakeClock, build_app, make_gate

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.export import paths, state
from pulsegate.export.paths import PathExport

AUTH = {"authorization": f"Bearer {SECRET}"}


def token() -> str:
    """A path segment no route spells (letters only: not folded as an id)."""
    return "".join(random.Random(11).choices(string.ascii_letters, k=14))


async def serve(app: Any, paths: list[str]) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        for p in paths:
            await client.get(p)
        r = await client.get("/_pulsegate/api/summary", headers=AUTH)
        assert r.status_code == 200
        return dict(r.json())


@pytest.mark.parametrize("raw", [False, True])
async def test_every_channel_gets_the_path_folded_unless_raw(clock: FakeClock,
                                                             raw: bool) -> None:
    secret = token()
    alerts: list[Any] = []
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, raw_paths=raw,
                     alert_critical_score=0.5, alert_callback=alerts.append)
    app = PulseGateMiddleware(build_app(clock), gate=gate)
    slow = f"/work/{secret}"
    d = await serve(app, [*(f"/work/{i}?ms={10 + i % 3}" for i in range(20)),
                          f"{slow}?ms=400"])
    gate.scheduler.run_all()  # alerts are delivered by the scheduler
    expected = slow if raw else "/work/{*}"
    shown = [a["path"] for a in d["anomalies"] if a["duration_ms"] > 300]
    kept = [p.summary for p in gate.ops.predictions.recent(50)
            if p.summary.get("duration_ms", 0) > 300]
    paged = [a for a in alerts if "critical" in a.kind]
    saved = state(gate).series.state()  # type: ignore[union-attr]
    assert shown == [expected]
    # predictions and alerts name the endpoint, not the path (made on the request path)
    assert kept and all(k["endpoint"] == "GET /work/{item}" and "path" not in k for k in kept)
    assert paged and all("path" not in a.fields and secret not in a.message for a in paged)
    assert [a["path"] for a in saved["anomalies"]] == [expected]
    assert raw or secret not in repr((d, saved, [p.summary for p in
                                                 gate.ops.predictions.recent(50)]))
    gate.close()


def test_a_path_is_folded_in_linear_time_and_bounded() -> None:
    export = PathExport(words={"users"})
    long = "/users/" + "a" * 100_000
    folded = export(long)
    assert len(folded) <= 210 and folded.startswith("/users/")
    assert export("/users/" + "b/" * 50_000).endswith("...")


def test_doctests_pass() -> None:
    assert doctest.testmod(paths).failed == 0
