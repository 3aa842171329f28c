"""The one ranking of query findings (N+1 insights and advisor findings) that `pulsegate
report`, the dashboard and its JSON share: expected saving, ROI order, ties, missing
figures, redaction of the SQL shown."""

from __future__ import annotations

from typing import Any

import pytest

from pulsegate.queries.ranking import insight_figures, rank, ranked_findings

NOW = 10_000.0


def insight(endpoint: str = "GET /authors", *, requests: int = 10, queries: int = 110,
            total_ms: float | None = 1000.0, minutes: float = 10.0,
            confidence: float | None = 0.9, kind: str = "n_plus_one", **extra: Any
            ) -> dict[str, Any]:
    """An N+1 insight as the registry keeps it: 10 requests over 10 minutes, 11
    statements each, 100 ms per request."""
    row: dict[str, Any] = {"endpoint": endpoint, "kind": kind, "fingerprint": "fp1",
                           "sql": "select id, title from book where author_id = ?",
                           "call_site": "app/views.py:12 in authors",
                           "relationship": "Author.books",
                           "suggestion": "selectinload(Author.books)", "requests": requests,
                           "queries": queries, "first_seen": NOW - minutes * 60.0,
                           "last_seen": NOW, "id": f"p-{endpoint}"}
    if total_ms is not None:
        row["total_ms"] = total_ms
    if confidence is not None:
        row["confidence"] = confidence
    row.update(extra)
    return row


def finding(saving: float | None, confidence: float | None = 0.9, *,
            kind: str = "missing_index", fp: str = "a1", endpoint: str = "GET /items"
            ) -> dict[str, Any]:
    """An advisor finding as ``Finding.as_dict()`` gives it."""
    row: dict[str, Any] = {"kind": kind, "fingerprint": fp,
                           "sql": "select id from items where owner = ?", "table": "items",
                           "evidence": "full scan of items (3000 rows) filtered on owner",
                           "fix": "CREATE INDEX ix_items_owner ON items (owner);",
                           "endpoints": [endpoint], "improvement": 0.8}
    if saving is not None:
        row["saving_ms_per_min"] = saving
    if confidence is not None:
        row["confidence"] = confidence
    return row


def test_the_n_plus_one_saving_is_share_removed_times_measured_ms_per_minute() -> None:
    fig = insight_figures(insight(), NOW)
    # 11 statements per request -> one: g = 10/11; u = 1000 ms over 10 minutes
    assert fig["improvement"] == pytest.approx(10 / 11)
    assert fig["urgency"] == pytest.approx(100.0)
    assert fig["saving_ms_per_min"] == pytest.approx(100.0 * 10 / 11)
    assert fig["roi"] == pytest.approx(0.9 * 100.0 * 10 / 11)
    # seen within one minute: at least a minute is counted (no burst inflates the rate)
    short = insight_figures(insight(minutes=0.1), NOW)
    assert short["saving_ms_per_min"] == pytest.approx(1000.0 * 10 / 11)


def test_n_plus_one_and_index_findings_rank_by_expected_saving() -> None:
    n1 = insight()  # saving 90.9 ms/min, ROI 81.8
    big, small = finding(200.0, fp="big"), finding(50.0, fp="small")  # ROI 180, 45
    rows = ranked_findings([n1], [small, big], NOW)
    assert [(r["source"], r["kind"], r["id"]) for r in rows] == [
        ("advisor", "missing_index", "big"), ("nplusone", "n_plus_one", "p-GET /authors"),
        ("advisor", "missing_index", "small")]
    assert [r["roi"] for r in rows] == pytest.approx([180.0, 0.9 * 1000 / 11, 45.0])
    # the same figures under the same names, whichever detector found it
    for r in rows:
        assert r["saving_ms_per_min"] is not None and r["fix"] and r["evidence"]
        assert r["endpoint"] in ("GET /items", "GET /authors")
    assert rows[1]["call_site"] == "app/views.py:12 in authors"
    assert rows[1]["fix"] == "selectinload(Author.books)"
    assert rows[0]["table"] == "items" and rows[0]["call_site"] is None
    assert "11.0 statements each" in rows[1]["evidence"]
    # a heavier N+1 (ten times the time) overtakes the index
    rows = ranked_findings([insight(total_ms=10_000.0)], [small, big], NOW)
    assert [r["source"] for r in rows] == ["nplusone", "advisor", "advisor"]


def test_ties_go_to_the_larger_saving_then_a_stable_order() -> None:
    # equal ROI (50): the larger saving first
    sure, unsure = finding(50.0, 1.0, fp="sure"), finding(100.0, 0.5, fp="unsure")
    assert [r["id"] for r in ranked_findings([], [sure, unsure], NOW)] == ["unsure", "sure"]
    # equal ROI and saving: kind, then endpoint, then id -- whatever the input's order
    same = [finding(80.0, fp="b"), finding(80.0, fp="a"),
            finding(80.0, fp="c", kind="correlated_subquery"),
            finding(80.0, fp="d", endpoint="GET /a")]
    want = ["c", "d", "a", "b"]
    assert [r["id"] for r in ranked_findings([], same, NOW)] == want
    assert [r["id"] for r in ranked_findings([], same[::-1], NOW)] == want


def test_rows_missing_a_figure_are_kept_after_every_ranked_row() -> None:
    no_saving = finding(None, fp="no-saving")
    no_conf = insight("GET /old", confidence=None)
    no_time = insight("GET /untimed", total_ms=None)
    tiny = finding(0.001, 0.1, fp="tiny")
    rows = ranked_findings([no_conf, no_time], [no_saving, tiny], NOW)
    assert rows[0]["id"] == "tiny"
    assert {r["id"] for r in rows[1:]} == {"no-saving", "p-GET /old", "p-GET /untimed"}
    assert all(r["roi"] is None for r in rows[1:])
    assert rows[1:] == rank(rows[1:][::-1])  # a stable order among them too
    untimed = next(r for r in rows if r["id"] == "p-GET /untimed")
    assert untimed["saving_ms_per_min"] is None and untimed["mean_ms"] is None
    # garbage in a persisted row is a missing figure, not an error
    odd = finding(float("nan"), fp="nan") | {"confidence": "high"}
    assert ranked_findings([], [odd, "not a row"], NOW)[0]["roi"] is None  # type: ignore[list-item]


def test_the_sql_shown_is_the_fingerprint_never_a_literal() -> None:
    leaked = insight(sql="SELECT * FROM users WHERE email = 'ann@example.com' AND id = 42")
    rows = ranked_findings([leaked], [finding(1.0) | {"sql": "select 1 from t where k = 'x'"}],
                           NOW)
    shown = " ".join(str(r["sql"]) for r in rows)
    assert "ann@example.com" not in shown and "42" not in shown and "'x'" not in shown
    assert "select * from users where email = ? and id = ?" in shown


def test_limit() -> None:
    rows = ranked_findings([insight()], [finding(200.0, fp="a"), finding(1.0, fp="b")], NOW,
                           limit=2)
    assert [r["id"] for r in rows] == ["a", "p-GET /authors"]
    assert ranked_findings([insight()], [], NOW, limit=0) == []
