from __future__ import annotations

import random

from pulsegate import header_values as hv


def test_tables_match_python_formatting() -> None:
    assert hv.CONFIDENCE[0] == "0" and hv.CONFIDENCE[100] == "100" and len(hv.CONFIDENCE) == 101
    assert [hv.SCORE[i] for i in (0, 7, 42, 999, 1000)] == [
        "0.000", "0.007", "0.042", "0.999", "1.000"]
    assert hv.CONFIDENCE[int(99.6 + 0.5)] == "100"
    assert hv.SCORE[int(0.99999 * 1000 + 0.5)] == "1.000"


def test_values_agree_with_printf_rounding_off_ties() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        x = rng.uniform(0.0, 5000.0)
        if abs(x * 10 - round(x * 10) - 0.5) > 1e-6:  # not a tie
            assert hv.tenths(x) == f"{x:.1f}"
        s = rng.random()
        if abs(s * 1000 - int(s * 1000) - 0.5) > 1e-6:
            assert hv.SCORE[int(s * 1000 + 0.5)] == f"{s:.3f}"
        c = rng.uniform(0.0, 100.0)
        if abs(c - int(c) - 0.5) > 1e-6:
            assert hv.CONFIDENCE[int(c + 0.5)] == f"{c:.0f}"


def test_the_tenths_cache_stays_bounded() -> None:
    for i in range(3 * hv.TENTHS.maxsize):
        assert hv.tenths(i / 10) == f"{i / 10:.1f}"
    assert len(hv.TENTHS) <= hv.TENTHS.maxsize
