"""The benchmark scripts run, on tiny sizes, and report what they say they report (the
figures themselves are the benchmarks' business, not the tests'). A script that no
test runs rots: an engine refactor once left two of them calling what was gone. The
simulations with bars to meet have their own tests (tests/control/), ``nab.py`` needs
the shared NAB data and ``instructions.py`` valgrind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=BENCHMARKS)
    # the end of stdout too: a soak or a simulation says there what broke
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr
    return done.stdout


def added(output: str, stack: str) -> int:
    found = re.search(rf"^  {re.escape(stack)}\s+[\d,]+\s+\+([\d,]+)$", output, re.MULTILINE)
    assert found is not None, output
    return int(found.group(1).replace(",", ""))


def test_bytecodes_counts_each_stack_and_names_pulsegates_functions() -> None:
    out = run("bytecodes.py", "--requests", "20", "--top", "4", "flask")
    pulsegate, otel, otel_flask = (added(out, s) for s in ("pulsegate", "otel", "otel-flask"))
    # Each stack does work of its own on top of the bare app's, and the Flask
    # instrumentation is the WSGI middleware plus Flask hooks.
    assert 0 < pulsegate < otel < otel_flask
    # the shares are printed from unrounded per-request averages: agree within rounding;
    # the budget's yardstick is the Flask instrumentation, the bare middleware's for
    # information
    for yardstick, base in (("FlaskInstrumentor (budget)", otel_flask),
                            ("bare WSGI middleware (for information)", otel)):
        share = re.search(rf"adds ([\d.]+) % of what OpenTelemetry's {re.escape(yardstick)}",
                          out)
        assert share is not None, out
        assert float(share.group(1)) == pytest.approx(pulsegate / base * 100, abs=0.5)
    # the dearest functions are pulsegate's own, by the difference from the bare stack
    top = out.split("(for information) adds\n")[1].split()
    assert any(name.startswith(("engine.py:", "wsgi.py:", "endpoint.py:")) for name in top)


def test_wsgi_overhead_reports_every_family_against_opentelemetry() -> None:
    out = run("wsgi_overhead.py", "--requests", "10", "--rounds", "2")
    assert out.count("budget: pulsegate adds") == 4  # flask, raw, cold, flushed
    assert "flask + opentelemetry flask" in out and "% of it" in out


def test_real_pages_pairs_every_framework_against_opentelemetry() -> None:
    timed = run("real_pages.py", "--requests", "2", "--rounds", "1", "--rows", "1,3")
    counted = run("real_pages.py", "--bytecodes", "--requests", "2", "--rows", "3")
    for out, pages in ((timed, 3), (counted, 2)):
        for family in ("flask", "django", "fastapi"):
            rows = [r for r in out.splitlines() if r.startswith(family)]
            assert len(rows) == pages and all("% of otel" in r for r in rows), out
    # counted: deterministic, and an N+1 page costs pulsegate more than its clean one
    per_request = {tuple(r.split()[:2]): float(r.split("pulsegate +")[1].split()[0])
                   for r in counted.splitlines() if "pulsegate +" in r}
    assert all(per_request[(f, "n+1")] > per_request[(f, "clean")] > 0
               for f in ("flask", "django", "fastapi"))


@pytest.mark.parametrize("family", ["flask", "django", "fastapi"])
def test_real_pages_child_serves_one_stack_alone(family: str) -> None:
    # what ``real_pages.py --instructions`` runs under valgrind (valgrind itself is too
    # slow for the suite): one stack of one page in a process of its own, warm-up, then
    # the counted window between two os.getppid() calls
    run("real_pages.py", "--child", family, "pulsegate", "2", "0", "2")


def test_instructions_child_serves_cold_requests_and_lines_need_the_cache_simulation() -> None:
    # what ``instructions.py --misses --lines`` runs under valgrind: warm-up, then each
    # counted request after EVICT bytes of memory traffic (its lines all missed once)
    run("instructions.py", "--child", "flask", "pulsegate", "2", "2", "1")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "instructions.py"), "--lines"],
                          capture_output=True, text=True, timeout=60, cwd=BENCHMARKS)
    assert done.returncode == 2 and "--lines counts with the cache simulation" in done.stderr


@pytest.mark.service
def test_real_server_serves_each_stack_under_wrk() -> None:
    out = run("real_server.py", "--duration", "1", "--rows", "2", "--families", "flask")
    rows = {r.split()[1]: r.split() for r in out.splitlines() if r.startswith("flask ")}
    assert set(rows) == {"bare", "otel", "pulsegate"}, out
    assert all(float(r[2]) > 0 and float(r[4]) > 0 for r in rows.values()), out


@pytest.mark.parametrize(("script", "args", "says"), [
    ("asgi_overhead.py", "--requests 20 --rounds 2", "budget: pulsegate adds"),
    ("django_overhead.py", "--requests 20 --rounds 2", "budget: pulsegate adds"),
    ("control_overhead.py", "--n 200 --rounds 1", "| both |"),
    ("registry_overhead.py", "--requests 200 --rounds 1 --endpoints 10",
     "registry listener alone"),
    ("export_overhead.py", "--requests 20 --rounds 1", "otel asgi + pulsegate + otel export"),
    ("memory.py", "--requests 2000 --routes 20 --unmatched 100", "internal errors 0"),
    ("memory.py", "--requests 0 --unmatched 0 --clients 200 --field-sizes 16,2048",
     "bytes per client"),
    ("fuzz_soak.py", "--examples 5 wsgi", "1 of 1 adapters held both properties"),
    ("query_overhead.py", "--rounds 1", "fingerprint cache"),
    ("fingerprint_cost.py", "--rounds 2 --loops 1 --base HEAD", "ratio scanner/base"),
    ("multivariate.py", "--seeds 1", "inside the forecast interval"),
    ("peer_suites.py", "--detectors pulsegate", "django-zeal              own sizes"),
    ("respcache_hits.py", "--requests 300 --rounds 1", "mean latency on/off"),
    ("column_reads.py", "--reads 2 --rounds 1", "window evidence: (['title']"),
])
def test_benchmark_runs(script: str, args: str, says: str) -> None:
    assert says in run(script, *args.split())
