"""The dashboard's Advice panel in headless Chromium: findings with their fix, the hour x
weekday heat map and the capacity cards render, with no script or CSP error."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))

from exportkit import SECRET, FakeClock, build_app, make_gate
from test_dashboard_browser import CHROMIUM_ARGS, serve, traffic

from pulsegate.advisor import Advisor
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.queries.events import QueryEvent
from services import chromium_path

pytestmark = [pytest.mark.service, pytest.mark.e2e, pytest.mark.pulsegate(nplusone="off")]


def test_advice_panel_in_chromium(tmp_path: Path, artifacts: Path) -> None:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("create table items (id integer primary key, owner integer)")
    conn.executemany("insert into items values (?, ?)", [(i, i % 100) for i in range(3000)])
    conn.commit()
    conn.close()
    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, aggregation_window=1)
    advisor = Advisor(gate, connect=lambda: sqlite3.connect(db), dialect="sqlite")
    problems: list[str] = []
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base:
        traffic(base)  # the endpoints' models learn their latency
        advisor.sample()
        traffic(base)
        clock.t += 60.0
        advisor.sample()  # a minute's traffic: the observed peak rate
        assert advisor.queries is not None
        for _ in range(5):
            advisor.queries.offer("GET /items", [QueryEvent(
                "SELECT id FROM items WHERE owner = ?", 2.0, db="sqlite")])
        advisor.run()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(f"{base}/_pulsegate/?token={SECRET}")
                page.wait_for_selector("body[data-loaded]", timeout=15_000)
                assert page.locator("#advice").is_visible()
                finding = page.locator("#findings tbody tr").first.inner_text()
                assert "missing_index" in finding
                assert "CREATE INDEX ix_items_owner ON items (owner);" in finding
                assert page.locator("#heatmap tbody tr").count() == 7
                assert page.locator("#heatmap tbody tr").first.locator("td").count() == 24
                assert "recommended workers" in page.locator("#capacity-cards").inner_text()
                page.screenshot(path=str(artifacts / "dashboard-advice.png"), full_page=True)
            finally:
                browser.close()
    gate.close()
    assert problems == []
