"""nplusone's own SQLAlchemy suite (tests/nplusone_sa_suite.py: origin, license, labels)
under pulsegate's structural rule, at nplusone's size (one user) and scaled to 10."""

from __future__ import annotations

import pytest

import nplusone_sa_suite as suite
from pulsegate import capture

pytestmark = pytest.mark.pulsegate(nplusone="off")


def _flagged(run: object) -> list[str]:
    with capture() as cap:
        run()  # type: ignore[operator]
    return [f"{d.kind} {d.relationship}" for d in cap.detections]


def _flagged_by_form(run: object) -> list[str]:
    with capture(single_lazy_loads=True) as cap:
        run()  # type: ignore[operator]
    return [f"{d.kind} {d.relationship}" for d in cap.detections]


def test_scaled_to_ten_every_label_is_met() -> None:
    for sc in suite.SCENARIOS:
        found = suite.run_one(sc, True, _flagged)
        assert found == ([f"n_plus_one {sc.relationship}"] if sc.problem else []), sc.name


def test_at_nplusones_size_only_its_one_load_verdicts_differ() -> None:
    """One user, one lazy load: nplusone calls it an N+1, the structural rule (two loads
    of one result from one line, as django-zeal) does not; nothing else differs."""
    for sc in suite.SCENARIOS:
        found = suite.run_one(sc, False, _flagged)
        assert found == [], sc.name
    assert {s.name for s in suite.SCENARIOS if s.problem} == suite.ONE_LOAD_CONFLICTS


@pytest.mark.parametrize("scaled", [False, True], ids=["own sizes", "scaled to 10"])
def test_nplusones_rule_meets_every_label(scaled: bool) -> None:
    """``single_lazy_loads=True`` judges by the query's form, as nplusone: ``.all()[0]``
    of a one-user list is an N+1, ``first()`` with an eager load is not."""
    for sc in suite.SCENARIOS:
        found = suite.run_one(sc, scaled, _flagged_by_form)
        assert found == ([f"n_plus_one {sc.relationship}"] if sc.problem else []), sc.name
