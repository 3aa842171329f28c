"""The documented examples run and show what the docs say they show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_capture_example_reports_the_fix() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "capture_example.py")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "N+1 query loading Author.books: 10 statements" in out
    assert "fix: options(selectinload(Author.books))" in out
    assert "examples/capture_example.py:" in out


def test_pytest_plugin_example_catches_the_lazy_version() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "examples" / "test_pytest_plugin_example.py"),
         "--pulsegate-nplusone=fail", "-q", "-p", "no:randomly", "--runxfail"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 1, run.stdout
    assert "1 failed, 1 passed" in run.stdout
    assert "fix: options(selectinload(Author.books))" in run.stdout
