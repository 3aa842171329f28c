"""The dashboard's Advice panel in headless Chromium: findings with their fix, the hour x
weekday heat map and the capacity cards render, with no script or CSP error."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))

from exportkit import SECRET, FakeClock, build_app, make_gate
from test_dashboard_browser import chromium_page, serve, traffic

from pulsegate.advisor import Advisor
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.queries.events import QueryEvent

pytestmark = [pytest.mark.service, pytest.mark.e2e, pytest.mark.pulsegate(nplusone="off")]


@contextlib.contextmanager
def logged_in(base: str, problems: list[str]) -> Iterator[Page]:
    """The dashboard's page in headless Chromium, loaded with the token."""
    with chromium_page(problems) as page:
        page.goto(f"{base}/_pulsegate/?token={SECRET}")
        page.wait_for_selector("body[data-loaded]", timeout=15_000)
        yield page


def test_advice_panel_in_chromium(items_db: Callable[..., Path], artifacts: Path) -> None:
    db = items_db(owner=100)
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
        with logged_in(base, problems) as page:
            assert page.locator("#advice").is_visible()
            finding = page.locator("#findings tbody tr").first.inner_text()
            assert "missing_index" in finding
            assert "CREATE INDEX ix_items_owner ON items (owner);" in finding
            assert page.locator("#heatmap tbody tr").count() == 7
            assert page.locator("#heatmap tbody tr").first.locator("td").count() == 24
            assert "recommended workers" in page.locator("#capacity-cards").inner_text()
            page.screenshot(path=str(artifacts / "dashboard-advice.png"), full_page=True)
    gate.close()
    assert problems == []


def test_one_ranked_findings_table_in_chromium(items_db: Callable[..., Path], artifacts: Path) -> None:
    """The advisor's findings and the N+1 insights in one table, in the order of the
    JSON (ROI = confidence x expected saving, highest first): an N+1 whose saving lies
    between two index findings' sits between them. Escaped, the SQL as its fingerprint,
    readable at a phone's width (one labelled block per finding, nothing sideways)."""
    db = items_db(owner=100, code=997)
    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, aggregation_window=1)
    advisor = Advisor(gate, connect=lambda: sqlite3.connect(db), dialect="sqlite")
    problems: list[str] = []
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base:
        traffic(base)  # two small N+1 requests among them (ROI about 1.4)
        assert advisor.queries is not None
        for _ in range(5):
            advisor.queries.offer("GET /items", [
                QueryEvent("SELECT id FROM items WHERE owner = ?", 40.0, db="sqlite"),
                QueryEvent("SELECT id FROM items WHERE code = ?", 8.0, db="sqlite")])
        advisor.run()
        index_rois = sorted((f["roi"] for f in advisor.findings()), reverse=True)
        assert len(index_rois) == 2 and index_rois[0] > 2 * index_rois[1] > 0
        # an N+1 worth the geometric mean of the two: 10 statements (9 go), one sighting
        # (a minute at least), confidence 1 -> ROI = 0.9 x total ms
        target = (index_rois[0] * index_rois[1]) ** 0.5
        gate.ops.observe_detection("GET /<b>shop</b>", {
            "kind": "n_plus_one", "fingerprint": "f00d", "count": 10, "total_ms": target / 0.9,
            "sql": "SELECT * FROM book WHERE author_id = 12345", "confidence": 1.0,
            "call_site": 'app/<img src=x onerror="window.__xss=1">.py:3',
            "suggestion": "selectinload(Shop.books)"}, gate.wall())
        with logged_in(base, problems) as page:
            table = page.locator("#findings tbody tr")
            shown = [(r.get_attribute("data-source"), r.get_attribute("data-kind"))
                     for r in table.all()]
            summary = page.evaluate("""() => fetch('api/findings', {headers:
                {Authorization: 'Bearer ' + sessionStorage.getItem('pulsegate-token')}})
                .then(r => r.json())""")["findings"]
            assert shown == [(r["source"], r["kind"]) for r in summary]
            # both kinds, the N+1 between the two index findings
            assert shown[:3] == [("advisor", "missing_index"), ("nplusone", "n_plus_one"),
                                 ("advisor", "missing_index")]
            assert ("nplusone", "n_plus_one") in shown[3:]  # traffic()'s small N+1
            rois = [float(t) for t in table.locator("td[data-label=roi]").all_inner_texts()]
            assert rois == sorted(rois, reverse=True)
            text = page.locator("#findings").inner_text()
            assert "CREATE INDEX ix_items_owner ON items (owner);" in text
            assert "selectinload(Shop.books)" in text
            assert "author_id = ?" in text and "12345" not in text
            # attacker-controlled endpoint and call site: shown as text, never markup
            assert 'app/<img src=x onerror="window.__xss=1">.py:3' in text
            assert "GET /<b>shop</b>" in text
            assert page.locator("#findings img, #findings b").count() == 0
            assert page.evaluate("() => window.__xss") is None
            page.locator("#findings-panel").screenshot(
                path=str(artifacts / "dashboard-findings.png"))

            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_function(
                "() => getComputedStyle(document.querySelector('#findings thead'))"
                ".display === 'none'", timeout=5_000)
            panel = page.locator("#findings-panel")
            assert page.evaluate("""() => { const s = document.querySelector(
                '#findings-panel'); return s.scrollWidth <= s.clientWidth; }""")
            assert (panel.bounding_box() or {"width": 999})["width"] <= 390
            first = table.first.locator("td[data-label=fix]")
            assert page.evaluate("""td => getComputedStyle(td, '::before').content""",
                                 first.element_handle()) == '"fix"'
            panel.screenshot(path=str(artifacts / "dashboard-findings-narrow.png"))
    gate.close()
    assert problems == []
