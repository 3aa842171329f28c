"""Healing hooks: a real incident switches configured actions on, for a while, through
the real ASGI middleware (Starlette app, in-process, injected clock)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fakeclock import FakeClock
from pulsegate import ConfigError, cli
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.config import Config
from pulsegate.control.healing import degraded
from pulsegate.engine import PulseGate
from pulsegate.export.dashboard.api import reports
from pulsegate.incidents import Incident


class Shop:
    """A Starlette app whose ``/slow`` takes ``slow_ms`` of the fake clock, and which
    records whether pulsegate told it to degrade."""

    def __init__(self, **options: Any) -> None:
        self.clock = clock = FakeClock(100.0)
        self.slow_ms = 10.0
        self.saw_degraded: list[bool] = []
        self.gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t, aggregation_window=1,
                              priority_rules={"/report*": "low"}, **options)

        async def slow(request: Request) -> PlainTextResponse:
            self.saw_degraded.append(degraded())
            clock.t += self.slow_ms / 1000
            return PlainTextResponse("slow")

        async def fast(request: Request) -> PlainTextResponse:
            return PlainTextResponse("fast")

        app = Starlette(routes=[Route("/slow", slow), Route("/report/{n}", fast),
                                Route("/fast", fast)])
        app.add_middleware(PulseGateMiddleware, gate=self.gate)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                        base_url="http://t")

    async def seconds(self, n: int, ms: float) -> None:
        """``n`` seconds of 5 requests a second to /slow at ``ms`` each, running the
        scheduler's jobs as time goes by (the healer is one of them)."""
        self.slow_ms = ms
        for _ in range(n):
            for _ in range(5):
                start = self.clock.t
                await self.client.get("/slow")
                self.clock.t = start + 0.2
            self.gate.scheduler.run_all()

    async def regress(self) -> None:
        """150 s at 10 ms, then /slow regresses to 80 ms until an incident is flagged."""
        await self.seconds(150, 10.0)
        for _ in range(30):
            await self.seconds(1, 80.0)
            if self.gate.incidents():
                return
        raise AssertionError("no incident flagged")


async def test_an_incident_sheds_the_low_priority_class_until_its_time_runs_out() -> None:
    shop = Shop(healing_actions=[{"do": "shed", "priority": "low"}], healing_seconds=20)
    async with shop.client as c:
        assert (await c.get("/report/1")).status_code == 200  # nothing on yet
        await shop.regress()
        shop.gate.scheduler.run_all()
        shed = await c.get("/report/1")
        assert shed.status_code == 503
        assert shed.headers["x-ml-optimization-applied"] == "shed"
        assert int(shed.headers["retry-after"]) >= 1
        assert (await c.get("/fast")).status_code == 200  # normal priority still served
        # reverted once healing_seconds pass without another incident
        await shop.seconds(25, 10.0)
        assert (await c.get("/report/2")).status_code == 200
    history = shop.gate.stats()["healing"]["history"]
    assert [h["state"] for h in history] == ["on", "off"]
    assert history[0]["incident"] == "GET /slow" and "shed low" in history[0]["what"]


async def test_a_degraded_endpoint_is_told_so_and_says_so_in_its_headers() -> None:
    shop = Shop(healing_actions=[{"do": "degrade", "on": "GET /slow"}], healing_seconds=20)
    async with shop.client as c:
        await shop.regress()
        shop.gate.scheduler.run_all()
        before = len(shop.saw_degraded)
        r = await c.get("/slow")
        assert r.headers["x-ml-optimization-applied"] == "degrade"
        assert shop.saw_degraded[before:] == [True]
        other = await c.get("/fast")  # another endpoint is untouched
        assert other.headers["x-ml-optimization-applied"] == "none"
    assert not any(shop.saw_degraded[:150 * 5])  # never before the incident
    assert not degraded()  # outside a request


async def test_tighten_makes_each_request_of_the_endpoint_cost_more_tokens() -> None:
    shop = Shop(rate_limiting=True, rate_limit="600/minute", rate_limit_burst=8,
                client_key="header:x-key",
                healing_actions=[{"do": "tighten", "on": "GET /slow", "factor": 0.25}])
    async with shop.client as c:
        await shop.regress()
        shop.gate.scheduler.run_all()
        # a fresh client's bucket holds 8 tokens; at 4 tokens a request it gets 2
        codes = [(await c.get("/slow", headers={"x-key": "fresh"})).status_code
                 for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        # the same client's requests to another endpoint still cost 1 token
        shop.clock.t += 10.0
        codes = [(await c.get("/fast", headers={"x-key": "fresh"})).status_code
                 for _ in range(8)]
        assert codes == [200] * 8


async def test_a_callback_hears_on_and_off_and_its_failure_is_only_counted() -> None:
    heard: list[tuple[str, bool]] = []

    def call(incident: Incident, active: bool) -> None:
        heard.append((incident.endpoint, active))
        raise RuntimeError("the user's hook failed")

    shop = Shop(healing_actions=[{"do": "callback", "call": call}], healing_seconds=5)
    async with shop.client:
        await shop.regress()
        shop.gate.scheduler.run_all()
        await shop.seconds(10, 10.0)
    assert heard == [("GET /slow", True), ("GET /slow", False)]
    assert shop.gate.stats()["internal_errors_by_kind"]["healing.callback:RuntimeError"] == 2


async def test_an_action_is_not_switched_on_more_often_than_allowed(
        caplog: pytest.LogCaptureFixture) -> None:
    shop = Shop(healing_actions=[{"do": "degrade"}], healing_seconds=1,
                healing_max_per_hour=1)
    healer = shop.gate.control.healer
    first = Incident("GET /a", 1.0, 2.0, 80.0, 10.0, 8.0, 70.0, 100, 3, 0.9)
    second = Incident("GET /b", 1.0, 2.0, 80.0, 10.0, 8.0, 70.0, 100, 3, 0.9)
    with caplog.at_level(logging.WARNING, logger="pulsegate.healing"):
        healer.incident(first)
        healer.incident(second)
    assert healer.degraded == frozenset({"GET /a"})
    assert healer.stats()["refused"] == 1
    assert "healing_max_per_hour" in caplog.text
    assert healer.revert() == 1 and not healer.engaged


async def test_switches_show_on_the_dashboard_and_in_report_after_the_process_is_gone(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shop = Shop(healing_actions=[{"do": "degrade"}], healing_seconds=5,
                state_dir=str(tmp_path))
    try:
        async with shop.client:
            await shop.regress()
            shop.gate.scheduler.run_all()
            shown = reports(shop.gate)["healing"]
            assert [a["what"] for a in shown["active"]] == ["degrade GET /slow"]
            assert shown["history"][0]["state"] == "on"
            await shop.seconds(10, 10.0)
        shop.gate.ops.snapshot()
    finally:
        shop.gate.close()
    assert reports(shop.gate)["healing"]["active"] == []
    assert cli.main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["healing"]
    assert [(r["state"], r["what"]) for r in rows] == [("off", "degrade GET /slow"),
                                                       ("on", "degrade GET /slow")]
    assert cli.main(["report", "--state-dir", str(tmp_path)]) == 0
    assert "healing actions (switched on by an incident" in capsys.readouterr().out


def test_triggers_choose_the_incidents_an_action_answers() -> None:
    gate = PulseGate(healing_actions=[
        {"do": "degrade", "on": "GET /api/*", "metric": "error rate", "min_score": 0.8}])
    healer = gate.control.healer

    def incident(endpoint: str, metric: str, score: float) -> Incident:
        return Incident(endpoint, 1.0, 2.0, 80.0, 10.0, 8.0, 70.0, 100, 3, score, metric)

    healer.incident(incident("GET /web/x", "error rate", 0.9))  # not under the prefix
    healer.incident(incident("GET /api/x", "latency", 0.9))  # another metric
    healer.incident(incident("GET /api/y", "error rate", 0.6))  # too weak
    assert not healer.engaged
    healer.incident(incident("GET /api/z", "error rate", 0.9))
    assert healer.degraded == frozenset({"GET /api/z"})


def test_no_action_configured_costs_nothing() -> None:
    assert PulseGate().control is None
    assert PulseGate(rate_limiting=True).control.healer is None


@pytest.mark.parametrize(("value", "message"), [
    ([{"do": "reboot"}], "one of shed, degrade, tighten, callback"),
    ([{"do": "shed", "priority": "high"}], "high is never shed"),
    ([{"do": "tighten", "factor": 1.5}], "between 0 and 1"),
    ([{"do": "degrade", "endpoint": "/search"}], "an endpoint like 'GET /search'"),
    ([{"do": "callback"}], "a callable"),
    ([{"do": "shed", "min_score": 2}], "from 0 to 1"),
    ([{"do": "shed", "when": "now"}], "keys among"),
    ({"do": "shed"}, "a list of at most"),
    ("[not json", "JSON array"),
])
def test_bad_actions_fail_clearly(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config(healing_actions=value, rate_limiting=True)
    assert err.value.key.startswith("healing_actions")
    assert message in str(err.value)


def test_tighten_needs_rate_limiting() -> None:
    with pytest.raises(ConfigError, match="only with rate_limiting on"):
        Config(healing_actions=[{"do": "tighten"}])


def test_actions_from_the_environment() -> None:
    c = Config.from_env({"PULSEGATE_HEALING_ACTIONS": '[{"do": "shed", "priority": "normal"}]',
                         "PULSEGATE_HEALING_SECONDS": "60"})
    assert [(a.do, a.priority) for a in c.healing_actions] == [("shed", "normal")]
    assert c.healing_seconds == 60


def test_switches_reach_every_switch_listener_plugged_on_the_gate() -> None:
    # any component hears the healer through the gate's plugs, whatever was built first
    g = PulseGate(healing_actions=[{"do": "degrade"}], healing_seconds=1,
                  healing_max_per_hour=10)
    heard: list[tuple[str, str, str]] = []
    g.plugs.add_switch_listener(lambda row, inc: heard.append(
        (row["state"], row["endpoint"], inc.endpoint)))
    try:
        g.control.healer.incident(Incident("GET /e", 0.0, 1.7e9, 80.0, 10.0, 8.0, 70.0,
                                           100, 3, 0.9))
        assert heard == [("on", "GET /e", "GET /e")]
    finally:
        g.close()


def test_a_raising_switch_listener_neither_stops_the_switch_nor_the_listeners_after_it(
        ) -> None:
    """Attack probe: a listener plugged first raises on every switch; the action still
    switches on, the next listener still hears it, and the fault is counted."""
    g = PulseGate(healing_actions=[{"do": "degrade"}], healing_seconds=1,
                  healing_max_per_hour=10)
    heard: list[str] = []

    def broken(row: Any, inc: Any) -> None:
        raise RuntimeError("listener down")

    g.plugs.add_switch_listener(broken)
    g.plugs.add_switch_listener(lambda row, inc: heard.append(row["state"]))
    try:
        g.control.healer.incident(Incident("GET /e", 0.0, 1.7e9, 80.0, 10.0, 8.0, 70.0,
                                           100, 3, 0.9))
        assert heard == ["on"]
        assert g.control.healer.degraded == frozenset({"GET /e"})
        assert g.stats()["internal_errors"] == 1
    finally:
        g.close()
