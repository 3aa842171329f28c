"""The dashboard in headless Chromium, served by a real uvicorn on a loopback port:
the page loads with the token (and drops it from the address bar), the SVG charts
render with data, feedback round-trips (button -> POST -> registry -> page state), it is
401 without the token and 404 when off, and no CSP or script error occurs. A
screenshot goes to ``artifacts/dashboard.png``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from exportkit import SECRET, FakeClock, build_app, make_gate
from playwright.sync_api import Page, sync_playwright

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job
from pulsegate.jobs.runs import deferred_of
from services import chromium_path, free_port, wait_port

pytestmark = [pytest.mark.service, pytest.mark.e2e, pytest.mark.pulsegate(nplusone="off")]

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """uvicorn in a thread on a free loopback port; stopped (and joined) on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn-dashboard-test", daemon=True)
    thread.start()
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def chromium_page(problems: list[str], width: int = 1400, height: int = 1000
                  ) -> Iterator[Page]:
    """A page of a headless Chromium (closed on exit); console and script errors are
    appended to ``problems``."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            yield page
        finally:
            browser.close()


def traffic(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(60):  # ~5 requests per 1 s window of the fake clock
            client.get(f"/work/{i}?ms={180 + (i * 7) % 40}")
            if i == 40:
                client.get("/work/spike?ms=2500")
        for _ in range(2):
            client.get("/work/n1?ms=150&n1=8")


@pytest.fixture()
def dashboard_app() -> Iterator[tuple[str, PulseGate]]:
    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, aggregation_window=1,
                     resource_allocation=True, rate_limiting=True, rate_limit="1000/minute",
                     healing_actions=[{"do": "shed", "priority": "low"}])
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base:
        traffic(base)
        yield base, gate


def test_dashboard_in_chromium(dashboard_app: tuple[str, PulseGate], artifacts: Path) -> None:
    base, gate = dashboard_app
    url = f"{base}/_pulsegate/"
    problems: list[str] = []
    for _ in range(3):  # a background job beside the endpoints (pulsegate.jobs)
        with observe_job("reports.build", gate=gate, queue_wait_ms=40.0):
            pass
    deferred_of(gate).drain()  # learnt now, as the scheduler's drain would within 0.5 s
    with chromium_page(problems) as page:
        # without the token: 401, and nothing of the dashboard shows
        response = page.goto(url)
        assert response is not None and response.status == 401
        assert "a valid dashboard token is required" in page.content()
        assert page.locator("input[name=token]").count() == 1  # the token form

        response = page.goto(f"{url}?token={SECRET}")
        assert response is not None and response.status == 200
        page.wait_for_selector("body[data-loaded]", timeout=15_000)
        assert "token" not in page.url  # removed from the address bar

        # charts: the band, the forecast and the observed series, the spike
        observed = page.locator("#latency-chart path.observed")
        assert observed.count() == 1
        assert int(observed.get_attribute("data-points") or 0) >= 8
        assert page.locator("#latency-chart polygon.band").count() == 1
        assert page.locator("#latency-chart path.forecast").count() == 1
        assert page.locator("#latency-chart circle.anomaly").count() >= 1
        assert page.locator("#endpoints svg.spark path").count() >= 1
        assert page.locator("#control-chart path.limit").count() == 1
        # healing actions configured, none switched on: the section says so
        assert page.locator("#healing").is_visible()
        assert "no action switched on yet" in page.locator("#healing").inner_text()
        # 63 sent, plus Chromium's favicon request for the 401 page
        shown = int(page.locator("#cards [data-key=requests] .v").inner_text())
        assert shown == gate.counters["requests"] >= 63

        # the job: its row in the jobs table, its model beside the endpoints
        job_row = page.locator("#job-rows tbody tr").first
        assert job_row.inner_text().split()[:2] == ["reports.build", "3"]
        assert "JOB reports.build" in page.locator("#endpoints").inner_text()

        # the N+1 detection with its call site and fix
        row = page.locator("#detections tbody tr[data-id]").first
        assert "Author.books" in row.inner_text()
        assert "app/views.py:12" in row.inner_text()
        # ... and ranked in the one findings table (no advisor: N+1 rows only)
        ranked = page.locator("#findings tbody tr[data-source=nplusone]").first
        assert "app/views.py:12" in ranked.inner_text()
        det_id = row.get_attribute("data-id")
        assert det_id and gate.ops.predictions.get(det_id) is not None
        assert page.locator("#models tbody tr[data-model]").count() >= 2

        # feedback: button -> POST -> registry -> the page shows the new state
        with page.expect_response(lambda r: r.url.endswith("/api/feedback")) as fb:
            row.locator("button.confirm").click()
        assert fb.value.status == 200
        page.wait_for_selector(f'#detections tr[data-id="{det_id}"] [data-feedback=confirmed]',
                               timeout=10_000)
        prediction = gate.ops.predictions.get(det_id)
        assert prediction is not None and prediction.correct is True
        page.wait_for_function(
            "() => [...document.querySelectorAll('#models tr[data-model=\"n1-detector\"] td')]"
            ".some((td, i) => i === 3 && td.textContent === '1')", timeout=10_000)

        an_row = page.locator("#anomalies tbody tr[data-id]").first
        an_id = an_row.get_attribute("data-id")
        an_row.locator("button.reject").click()
        page.wait_for_selector(f'#anomalies tr[data-id="{an_id}"] [data-feedback=rejected]',
                               timeout=10_000)
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

        # a reload (the token is no longer in the address) gets in again from the
        # tab's sessionStorage, and keeps the state (it lives on the server)
        page.reload()
        page.wait_for_selector("body[data-loaded]", timeout=15_000)
        assert page.locator(f'#detections tr[data-id="{det_id}"] [data-feedback=confirmed]').count() == 1
    # CSP violations and script errors show here; a 401 document (before the token
    # was given, and on the reload that re-sends it) is logged by Chromium too.
    problems = [m for m in problems if "status of 401" not in m]
    assert problems == [], problems


def test_dashboard_off_is_404_in_chromium() -> None:
    clock = FakeClock()
    gate = make_gate(clock)  # dashboard off (the default)
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            response = page.goto(f"{base}/_pulsegate/?token={SECRET}")
            assert response is not None and response.status == 404
        finally:
            browser.close()


def test_axis_labels_of_long_latencies_fit_the_chart() -> None:
    """A 22 s request: every y-axis label lies inside the chart ("22075 ms" lost its
    first digit off the left edge)."""
    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, aggregation_window=1)
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(12):
                client.get(f"/work/{i}?ms={20000 + 100 * i}")
            client.get("/work/slow?ms=22075")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/_pulsegate/?token={SECRET}")
                page.wait_for_selector("body[data-loaded]", timeout=15_000)
                labels = page.eval_on_selector_all(
                    '#latency-chart text[x="44"]',  # the y axis: anchored at L - 4
                    "ts => ts.map(t => [t.textContent, t.getBBox().x])")
            finally:
                browser.close()
    assert len(labels) == 5
    assert labels[0][0] == "0.0 ms", labels
    assert all(x >= 0 for _text, x in labels), labels


def test_the_detection_streams_counts_show_on_the_dashboard() -> None:
    """``DetectionStream`` registers its stats (``gate.stats()["stream"]``); the page
    shows them, per sink, as text (a sink's name is the user's URL)."""
    from pulsegate.export.stream import DetectionStream

    class Sink:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail, self.events = name, fail, []

        def send(self, events: Any) -> None:
            if self.fail:
                raise ConnectionRefusedError("no one listens")
            self.events.extend(events)

    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET, aggregation_window=1)
    good, dead = Sink("webhook:<b>hook</b>", False), Sink("redis:<img src=x onerror=alert(1)>", True)
    stream = DetectionStream(gate, [good, dead])
    problems: list[str] = []
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(2):
                client.get("/work/n1?ms=150&n1=8")  # a query detection
        stream.run()
        assert len(good.events) >= 1
        with chromium_page(problems) as page:
            page.goto(f"{base}/_pulsegate/?token={SECRET}")
            page.wait_for_selector("body[data-loaded]", timeout=15_000)
            panel = page.locator("#stream")
            assert panel.is_visible()
            assert panel.locator("b, img").count() == 0  # names are text
            rows = [r.split("\t") for r in
                    panel.locator("#stream-sinks tbody tr").all_inner_texts()]
            # (the scheduler runs the stream too: the dead sink's failures go on rising)
            assert rows[0] == ["webhook:<b>hook</b>", str(len(good.events)), "0", "0", "0", "0",
                               ""], rows
            assert rows[1][:4] == ["redis:<img src=x onerror=alert(1)>", "0", "0",
                                   str(len(good.events))], rows
            assert int(rows[1][4]) >= 1 and rows[1][6] == "ConnectionRefusedError", rows
            sent = page.locator("#stream-cards [data-key=sent] .v").inner_text()
            assert sent == str(len(good.events))
    assert problems == [], problems


def test_a_findings_rows_text_is_shown_as_text_and_its_literals_redacted() -> None:
    """Attack probe: every text field of a findings row (kind, endpoints, table, fix,
    SQL, evidence) carrying markup and a string literal, as a row restored from another
    version's state could: shown as text (no element made, no script run) and the SQL's
    literal replaced by ``?`` before it leaves the server."""
    clock = FakeClock()
    gate = make_gate(clock, dashboard=True, dashboard_token=SECRET)
    mark = '<img src=x onerror="window.pwned=1">'
    hostile = {"kind": "missing_index" + mark, "fingerprint": "f" * 16, "table": "t" + mark,
               "endpoints": ["GET /a" + mark], "fix": "CREATE INDEX " + mark,
               "sql": f"SELECT * FROM t WHERE email = 'alice@example.com{mark}'",
               "evidence": "seq scan" + mark, "confidence": 0.9, "saving_ms_per_min": 5.0}
    gate.plugs.add_report("advisor", lambda: {"findings": [hostile]})
    problems: list[str] = []
    with serve(PulseGateMiddleware(build_app(clock), gate=gate)) as base, \
            chromium_page(problems) as page:
        page.goto(f"{base}/_pulsegate/?token={SECRET}")
        page.wait_for_selector("body[data-loaded]", timeout=15_000)
        table = page.locator("#findings")
        text = table.inner_text()
        assert table.locator("img").count() == 0
        assert page.evaluate("window.pwned") is None
        assert text.count(mark) == 5  # kind, where, table, fix, evidence: as text
        assert "alice" not in text, text
        assert "select * from t where email = ?" in text
    assert problems == []
    gate.close()
