"""The pytest plugin: `pytest examples/test_pytest_plugin_example.py --pulsegate-nplusone=fail`."""

from __future__ import annotations

import pytest


@pytest.mark.pulsegate(max_queries=5, nplusone="fail")
def test_view_stays_within_budget(pulsegate_capture: object) -> None:
    # run the code under test here; pulsegate_capture.queries lists its statements
    assert pulsegate_capture.query_count <= 5  # type: ignore[attr-defined]
