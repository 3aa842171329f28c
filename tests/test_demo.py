"""The README's main command: the demo runs, stops by itself and prints its report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_to_completion_and_reports_every_endpoint() -> None:
    # /slow's incident needs its detector's 200 requests of warm-up before the regression and
    # some after it (flagged after 76 in a 16 s run at load 5, of 279 /slow requests in all):
    # asked by count, a loaded machine runs longer instead of regressing /slow unlearnt.
    proc = subprocess.run(
        [sys.executable, "-m", "pulsegate.demo", "--seconds", "16", "--concurrency", "4",
         "--slow-requests", "250", "100"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for endpoint in ("GET /fast", "GET /items/{item_id}", "GET /authors", "GET /slow",
                     "GET /flaky"):
        assert endpoint in out, out
    assert "internal errors 0" in out, out
    assert "scraper (one API key, flat out)" in out, out
    # the N+1 endpoint's detection, with the relationship, the app line and the fix
    assert "relationship: Author.books" in out, out
    assert "demo_app.py" in out and "fix: options(selectinload(Author.books))" in out, out
    # the query advisor (issue 22): the unindexed column, from SQLite's own plan
    assert "fix: CREATE INDEX ix_reviews_book_id ON reviews (book_id);" in out, out
    assert "capacity: " in out, out
    # issue 21: the price cache per key pattern, and the pricing upstream with its health
    assert re.search(r"^cache demo price:\{id\}: \d+ reads, hit rate", out, re.M), out
    assert re.search(r"^upstream http://127\.0\.0\.1:\d+ \(/upstream/price/\{id\}\): \d+ calls, "
                     r"health [\d.]+", out, re.M), out
    # and the background job beside the endpoints: its runs, waits and the N+1 inside it
    assert re.search(r"^job demo\.send_receipt: \d+ runs, forecast [\d.]+ ms, last queue "
                     r"wait [\d.]+ ms", out, re.M), out
    assert re.search(r"^  n_plus_one inside the job: \d+ statements, fix: ", out, re.M), out
    # issue 22 item 4: catalog pages learnt and served from the response cache (keyed by
    # the clients' x-api-key), and no read after a write older than the write
    served = re.search(r"^response cache: hit rate [\d.]+ \((\d+) hits", out, re.M)
    assert served is not None and int(served.group(1)) > 0, out
    assert re.search(r"^  GET /catalog/\{page\}: served from the cache", out, re.M), out
    assert re.search(r"^  [1-9]\d* reads right after a write, as another client: 0 older "
                     r"than the write", out, re.M), out
    assert "Traceback" not in proc.stderr, proc.stderr

    # item 8 of issue 16: the report tells the truth.
    # /slow's regression is an incident, with its magnitude, evidence and p50/p95 before
    # and after the evidence began; no other endpoint (none changed) has one.
    incidents = re.findall(r"^incident on (GET \S+) since .*$", out, re.M)
    assert incidents and set(incidents) == {"GET /slow"}, out
    line = next(m for m in out.splitlines() if m.startswith("incident on GET /slow"))
    p50 = re.search(r"p50 ([\d.]+) -> ([\d.]+) ms, p95 ([\d.]+) -> ([\d.]+) ms", line)
    assert p50 is not None, line
    before50, after50, before95, after95 = map(float, p50.groups())
    assert after50 > 2.5 * before50 and after95 > before95, line  # 15 ms -> 60 ms
    assert re.search(r"over \d+ requests in \d+ windows", line), line
    assert "no incident flagged on GET /slow" not in out, out
    # issue 22 item 5: the incident switches on the demo's healing action, and the
    # requests served while it is on get the cheaper variant (5 ms, not 60)
    assert re.search(r"^healing: degrade GET /slow switched on at \+[\d.]+ s, after the "
                     r"incident on GET /slow", out, re.M), out
    degraded = re.search(r"^  GET /slow served degraded .*: \d+ requests, p50 ([\d.]+) ms", out,
                         re.M)
    assert degraded is None or float(degraded.group(1)) < 0.5 * after50, out
    # single slow requests are named apart from incidents, UNMATCHED and the column
    # windows are explained
    assert "outlier requests" in out and "x-ml-anomaly-score" in out, out
    assert "not a change of the endpoint" in out and "UNMATCHED: requests no route matched" in out
    assert "p50 ms (run)" in out and "forecast ms (now)" in out, out


def test_the_demo_key_pattern_survives_when_pulsegate_is_installed_as_a_library() -> None:
    """Installed from the wheel, the demo's module lies in site-packages: its constants
    count as a library's and a lone ``price`` is folded (docs/caches.md). The demo
    declares its word, so its report still reads ``price:{id}``."""
    from pulsegate.caches.keys import fold
    from pulsegate.caches.vocabulary import ProgramWords, Vocabulary
    from pulsegate.demo import DEMO_CONFIG
    from pulsegate.demo_app import build_app  # noqa: F401  (its words are read below)

    library_only = ProgramWords(start=False, application=False)  # every module a library
    library_only.read_new_modules()
    assert fold("price:17", Vocabulary((), library_only)) == "{*}:{id}"
    assert fold("price:17", Vocabulary(DEMO_CONFIG["cache_key_words"], library_only)) == \
        "price:{id}"
