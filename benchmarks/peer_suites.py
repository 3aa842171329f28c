"""The peers' own N+1 suites, scored for pulsegate, django-zeal and nplusone on the same
scenarios, at the peers' fixture sizes and with every loop scaled to 10 parents.

The scenarios are ported in ``tests/`` (origin and MIT licenses in each module):
django-zeal's suite (``tests/django_instrument/zeal_suite.py``), nplusone's Django suite
(``tests/django_instrument/nplusone_suite.py``) and its SQLAlchemy suite
(``tests/nplusone_sa_suite.py``). Each detector runs in its own process with its
recommended setup and defaults -- zeal as an installed app inside ``zeal_context()``
(threshold 2), nplusone's Django patch inside its ``Profiler`` -- and a scenario counts
as flagged when the detector reports an N+1 (nplusone's unused-eager-load verdicts are
another kind, scored apart). A detector that cannot run a suite says why (nplusone's
SQLAlchemy extension does not import on SQLAlchemy 2.x; zeal is Django-only).

    python benchmarks/peer_suites.py [--details]
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DETECTORS = ("pulsegate", "pulsegate+single", "django-zeal", "nplusone")
#: ``pulsegate+single``: pulsegate with ``single_lazy_loads=True`` (nplusone's rule: one
#: lazy relationship load of an instance fetched by a list form -- ``.all()``, iteration
#: -- is an N+1, whatever its rows), off by default.
_OPTIONS: dict[str, dict[str, Any]] = {"pulsegate+single": {"single_lazy_loads": True}}
SUITES = ("django-zeal", "nplusone (Django)", "nplusone (SQLAlchemy)")


# --- one detector, in its own process ------------------------------------------------------


def _setup_django(detector: str) -> None:
    import django
    from django.conf import settings

    apps = ["django.contrib.contenttypes", "pulsegate.django"]
    if detector == "django-zeal":
        apps.append("zeal")
    settings.configure(
        DEBUG=False, SECRET_KEY="peer-suites", INSTALLED_APPS=apps, USE_TZ=True,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        LOGGING_CONFIG=None)
    django.setup()


def _django_detect(detector: str) -> Callable[[Callable[[], object]], bool]:
    if detector.startswith("pulsegate"):
        from pulsegate.django.instrument import install

        install()
        peer_scoring = importlib.import_module("peer_scoring")
        peer_scoring.__dict__["CAPTURE_OPTIONS"] = _OPTIONS.get(detector, {})
        return lambda run: bool(peer_scoring.pulsegate_detect(run)[0])
    if detector == "django-zeal":
        zeal = importlib.import_module("zeal")

        def zeal_verdict(run: Callable[[], object]) -> bool:
            try:
                with zeal.zeal_context():
                    run()
            except zeal.NPlusOneError:
                return True
            return False

        return zeal_verdict
    importlib.import_module("nplusone.ext.django.patch")  # patches the ORM on import
    return _nplusone_verdict


def _nplusone_verdict(run: Callable[[], object]) -> bool:
    """nplusone's own way outside a web request: its Profiler raises on a verdict."""
    profiler = importlib.import_module("nplusone.core.profiler")
    exceptions = importlib.import_module("nplusone.core.exceptions")
    try:
        with profiler.Profiler():
            run()
    except exceptions.NPlusOneError as exc:
        return "n+1" in str(exc)  # not its unused-eager-load verdict
    return False


def _sa_detect(detector: str) -> Callable[[Callable[[], object]], bool]:
    if detector.startswith("pulsegate"):
        from pulsegate import capture

        options = _OPTIONS.get(detector, {})

        def pulsegate(run: Callable[[], object]) -> bool:
            with capture(**options) as cap:
                run()
            return any(d.kind == "n_plus_one" for d in cap.detections)

        return pulsegate
    if detector == "django-zeal":
        raise RuntimeError("django-zeal instruments the Django ORM only")
    importlib.import_module("nplusone.ext.sqlalchemy")  # raises on SQLAlchemy 2.x
    return _nplusone_verdict


def worker(detector: str) -> None:
    """Print one JSON line per (suite, size, scenario): the label and the verdict."""
    sys.path[:0] = [str(TESTS / "django_instrument"), str(TESTS)]
    _setup_django(detector)
    nplusone_sa_suite, nplusone_suite, peer_scoring, zeal_suite = (
        importlib.import_module(m)
        for m in ("nplusone_sa_suite", "nplusone_suite", "peer_scoring", "zeal_suite"))

    zeal_suite.create_schema()
    nplusone_suite.create_schema()

    def emit(suite: str, scaled: bool, name: str, problem: bool, verdict: Any) -> None:
        print(json.dumps({"detector": detector, "suite": suite, "scaled": scaled, "name": name,
                          "problem": problem, "verdict": verdict}), flush=True)

    detect = _django_detect(detector)
    for suite, scenarios in (("django-zeal", zeal_suite.SCENARIOS),
                             ("nplusone (Django)", [s for s in nplusone_suite.SCENARIOS
                                                    if s.label != "unused_eager_load"])):
        for scaled in (False, True):
            for s in scenarios:
                try:
                    verdict: Any = bool(peer_scoring.run_one(s, scaled, detect))
                except Exception as exc:  # a crash is a verdict too
                    verdict = f"crash: {type(exc).__name__}: {exc}"[:200]
                emit(suite, scaled, s.name, s.problem, verdict)
    try:
        sa_detect = _sa_detect(detector)
    except Exception as exc:
        reason = f"cannot run: {type(exc).__name__}: {exc}"[:200]
        for scaled in (False, True):
            for s in nplusone_sa_suite.SCENARIOS:
                emit("nplusone (SQLAlchemy)", scaled, s.name, s.problem, reason)
        return
    for scaled in (False, True):
        for s in nplusone_sa_suite.SCENARIOS:
            try:
                verdict = bool(nplusone_sa_suite.run_one(
                    s, scaled, sa_detect, instrumented=detector.startswith("pulsegate")))
            except Exception as exc:
                verdict = f"crash: {type(exc).__name__}: {exc}"[:200]
            emit("nplusone (SQLAlchemy)", scaled, s.name, s.problem, verdict)


# --- the comparison -----------------------------------------------------------------------


def collect(detectors: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for detector in detectors:
        done = subprocess.run([sys.executable, __file__, "--worker", detector],
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{detector} worker failed:\n{done.stderr}")
        rows += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return rows


def score(rows: list[dict[str, Any]]) -> str:
    """``precision / recall`` of one detector on one suite and size, or why not."""
    broken = [r["verdict"] for r in rows if isinstance(r["verdict"], str)]
    if broken and broken[0].startswith("cannot run"):
        return "cannot run"
    tp = sum(1 for r in rows if r["problem"] and r["verdict"] is True)
    fp = sum(1 for r in rows if not r["problem"] and r["verdict"] is True)
    fn = sum(1 for r in rows if r["problem"] and r["verdict"] is not True)
    precision = f"{tp / (tp + fp):.2f}" if tp + fp else "n/a"
    recall = f"{tp / (tp + fn):.2f}" if tp + fn else "n/a"
    crashes = f", {len(broken)} crash" if broken else ""
    return f"{precision} / {recall}{crashes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--details", action="store_true",
                        help="list every scenario a detector gets wrong, and why a peer cannot run")
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help="comma-separated subset of " + ", ".join(DETECTORS))
    parser.add_argument("--worker", choices=DETECTORS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    detectors = tuple(d for d in DETECTORS if d in args.detectors.split(","))
    rows = collect(detectors)
    print("precision / recall of the N+1 verdicts against each suite's own labels\n")
    print(f"{'suite':24} {'size':12} {'scenarios':>10}  " + "".join(f"{d:>20}" for d in detectors))
    for suite in SUITES:
        for scaled in (False, True):
            these = [r for r in rows if r["suite"] == suite and r["scaled"] is scaled]
            mine = [r for r in these if r["detector"] == "pulsegate"]
            problems = sum(1 for r in mine if r["problem"])
            size = "scaled to 10" if scaled else "own sizes"
            cells = "".join(f"{score([r for r in these if r['detector'] == d]):>20}" for d in detectors)
            print(f"{suite:24} {size:12} {f'{problems}+{len(mine) - problems}':>10}  {cells}")
    if args.details:
        print("\nscenarios a detector gets wrong (label: N+1 or fine):")
        for r in rows:
            if r["verdict"] is not r["problem"] and not str(r["verdict"]).startswith("cannot run"):
                size = "scaled" if r["scaled"] else "own"
                label = "N+1" if r["problem"] else "fine"
                print(f"  {r['detector']:12} {r['suite']:22} {size:6} {label:5} {r['name']}: "
                      f"{r['verdict']}")
        reasons = {(r["detector"], r["suite"], r["verdict"]) for r in rows
                   if str(r["verdict"]).startswith("cannot run")}
        for detector, suite, reason in sorted(reasons):
            print(f"  {detector} on {suite}: {reason}")


if __name__ == "__main__":
    main()
