"""The README's main command: the demo runs, stops by itself and prints its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_to_completion_and_reports_every_endpoint() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pulsegate.demo", "--seconds", "4", "--concurrency", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
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
    assert "Traceback" not in proc.stderr, proc.stderr
