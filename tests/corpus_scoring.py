"""Precision and recall of the N+1 detector over a corpus of ORM scenarios."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def precision_recall(cases: Iterable[tuple[str, bool, Any, Any]],
                     detects: Callable[[Any], bool]) -> tuple[float, float]:
    """``cases`` are (name, is_problem, kind, run); ``detects(run)`` runs one scenario and
    says whether anything was reported."""
    tp = fp = fn = 0
    for _name, problem, _, run in cases:
        found = detects(run)
        tp += problem and found
        fn += problem and not found
        fp += (not problem) and found
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    return precision, recall
