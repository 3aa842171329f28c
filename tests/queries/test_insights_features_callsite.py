from __future__ import annotations

import json
import os
import sys

from pulsegate.queries import NPlusOneDetector, QueryEvent, QueryFeatureExtractor, QueryInsights
from pulsegate.queries.callsite import CallSiteFinder
from pulsegate.queries.nplusone import Detection


def det(fp: str, ms: float, count: int = 5, kind: str = "n_plus_one") -> Detection:
    return Detection(kind, fp, f"select {fp}", count, ms, 0.5, "app.py:1 in v", None, "fix", 0.9)


def test_insights_rank_by_total_time_and_stay_bounded() -> None:
    ins = QueryInsights(max_fingerprints=2)
    ins.record("GET /a", [det("aa", 10.0)], now=1.0)
    ins.record("GET /b", [det("aa", 10.0), det("bb", 5.0)], now=2.0)
    rows = ins.ranked()
    assert [r["fingerprint"] for r in rows] == ["aa", "bb"]
    assert rows[0]["requests"] == 2 and rows[0]["endpoints"] == ["GET /a", "GET /b"]
    assert rows[0]["mean_count"] == 5 and rows[0]["mean_ms"] == 10.0
    ins.record("GET /c", [det("cc", 1.0)], now=3.0)  # evicts the least recently seen: "aa"
    assert len(ins) == 2 and ins.evictions == 1
    assert {r["fingerprint"] for r in ins.ranked()} == {"bb", "cc"}
    assert json.dumps(ins.ranked())  # plain data for the dashboard / CLI


def test_features_of_a_request() -> None:
    events = [QueryEvent(sql="SELECT * FROM author", duration_ms=2.0, params_count=0)] + [
        QueryEvent(sql="SELECT * FROM book WHERE author_id = ?", duration_ms=1.0, params_hash=i,
                   params_count=1) for i in range(6)] + [
        QueryEvent(sql="INSERT INTO log (m) VALUES (?)", duration_ms=2.0, params_hash=1, params_count=1)]
    f = QueryFeatureExtractor(NPlusOneDetector()).from_events(events)
    assert (f.query_count, f.distinct_shapes, f.max_repeat, f.write_count) == (8, 3, 6, 1)
    assert f.repeat_share == 6.0 / 10.0 and f.query_ms == 10.0
    untimed = [QueryEvent(sql="SELECT 1", duration_ms=0.0, params_count=0)] * 3
    assert QueryFeatureExtractor().from_events(untimed).repeat_share == 1.0


def _here() -> str | None:
    return CallSiteFinder().find(1)


def test_call_site_is_the_first_application_frame() -> None:
    site = _here()
    assert site is not None and site.endswith(" in _here") and "test_insights_features_callsite.py:" in site
    # A frame from a library root is skipped: json's encoder calls back into our default().
    finder = CallSiteFinder()
    seen: list[str | None] = []

    def default(o: object) -> str:
        seen.append(finder.find(1))
        return "x"

    json.dumps(object(), default=default)
    assert seen[0] is not None and seen[0].endswith(" in default")
    lib = CallSiteFinder(extra_library_roots=(os.path.dirname(__file__),))
    assert "test_insights_features_callsite" not in str(lib.find(1))  # our own dir skipped now
    assert sys.modules["json"].__file__  # stdlib is a library root
    assert CallSiteFinder().is_library(json.dumps.__code__)


def test_call_site_caches_stay_bounded() -> None:
    finder = CallSiteFinder(max_entries=3)
    codes = [compile(f"x = {i}", f"/app/m{i}.py", "exec") for i in range(10)]
    for code in codes:
        finder.is_library(code)
    assert len(finder._verdict) <= 3 and len(finder._keep) <= 3
