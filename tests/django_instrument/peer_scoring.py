"""Run ported peer scenarios under pulsegate's ``capture()`` and score them against the
peer's labels (shared by the tests and ``benchmarks/peer_suites.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

#: Parents per loop in the scaled runs.
SCALED = 10


@dataclass
class Outcome:
    name: str
    problem: bool  # the peer's label
    flagged: bool  # an n_plus_one was reported
    relationship: str | None  # what pulsegate named (first n_plus_one)
    expected: str | None  # what the peer names
    other: list[str]  # other kinds reported (single_load_loop, ...)
    fix: str | None


def size_of(scenario: Any, scaled: bool) -> int:
    """The scenario's own fixture size, or :data:`SCALED` for loops when ``scaled``."""
    n: int = scenario.size
    return SCALED if scaled and n >= 2 else n


def run_one(scenario: Any, scaled: bool, detect: Callable[[Callable[[], object]], Any]) -> Any:
    """Seed the scenario's parents (own size or scaled), run it (its scaled variant when
    it has one) through ``detect``, roll everything back."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    run = getattr(scenario, "run_scaled", None) if scaled else None
    with transaction.atomic():
        scenario.fixture(size_of(scenario, scaled))
        try:
            return detect(run or scenario.run)
        finally:
            transaction.set_rollback(True)


#: Options of the detector under test (benchmarks/peer_suites.py scores
#: ``single_lazy_loads=True``, nplusone's rule, as its own column).
CAPTURE_OPTIONS: dict[str, object] = {}


def pulsegate_detect(run: Callable[[], object]) -> tuple[bool, str | None, list[str], str | None]:
    from pulsegate import capture

    with capture(**CAPTURE_OPTIONS) as cap:
        run()
    nplus = [d for d in cap.detections if d.kind == "n_plus_one"]
    other = sorted({d.kind for d in cap.detections if d.kind != "n_plus_one"})
    first = nplus[0] if nplus else None
    return (bool(nplus), first.relationship if first else None, other,
            first.suggestion if first else None)


def score_pulsegate(scenarios: Iterable[Any], scaled: bool) -> list[Outcome]:
    out = []
    for s in scenarios:
        flagged, rel, other, fix = run_one(s, scaled, pulsegate_detect)
        out.append(Outcome(s.name, s.problem, flagged, rel, s.relationship, other, fix))
    return out


def precision_recall(outcomes: Iterable[Any]) -> tuple[float, float, int, int]:
    """``(precision, recall, problems, non-problems)`` of ``flagged`` against ``problem``."""
    rows = list(outcomes)
    tp = sum(1 for o in rows if o.problem and o.flagged)
    fp = sum(1 for o in rows if not o.problem and o.flagged)
    fn = sum(1 for o in rows if o.problem and not o.flagged)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp + fn, sum(1 for o in rows if not o.problem)
