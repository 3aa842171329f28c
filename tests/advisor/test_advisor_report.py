"""The advisor's report reaches `pulsegate report` (ranked with the N+1 insights) and the
dashboard's summary."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pulsegate import PulseGate, cli
from pulsegate.advisor import Advisor
from pulsegate.export import state
from pulsegate.export.dashboard import api
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo

WALL0 = 1_800_000_000.0


@pytest.fixture()
def advised(tmp_path: Path) -> tuple[Path, PulseGate, Advisor]:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("create table items (id integer primary key, owner integer, name text)")
    conn.executemany("insert into items values (?, ?, ?)", [(i, i % 300, "x") for i in range(3000)])
    conn.commit()
    conn.close()
    clock = [100.0]
    gate = PulseGate(state_dir=str(tmp_path / "state"), clock=lambda: clock[0],
                     wall=lambda: WALL0 + clock[0])
    advisor = Advisor(gate, connect=lambda: sqlite3.connect(db), dialect="sqlite")
    for minute in range(180):
        for _ in range(3 if minute % 60 < 30 else 1):
            ctx = gate.begin(RequestInfo("GET", "/items", route="/items"))
            assert ctx is not None
            ctx.add_query(QueryEvent(sql="SELECT id FROM items WHERE owner = ?",
                                     duration_ms=2.0, db="sqlite"))
            clock[0] += 0.02
            gate.response_headers(ctx, 200)
            gate.finish(ctx, 200)
        clock[0] += 60.0
        advisor.sample()
    advisor.run()
    gate.ops.snapshot()
    return tmp_path / "state", gate, advisor


def test_report_json_and_text(advised: tuple[Path, PulseGate, Advisor],
                              capsys: pytest.CaptureFixture[str]) -> None:
    state, gate, _advisor = advised
    assert cli.main(["report", "--state-dir", str(state), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kinds = [i["kind"] for i in out["query_insights"]]
    assert kinds == ["missing_index"]
    assert out["query_insights"][0]["suggestion"] == "CREATE INDEX ix_items_owner ON items (owner);"
    assert out["advice"]["patterns"]["endpoints"]["GET /items"]["hourly"]
    assert cli.main(["report", "--state-dir", str(state)]) == 0
    text = capsys.readouterr().out
    assert "CREATE INDEX ix_items_owner" in text and "workload patterns" in text
    assert "Mon  " in text  # the heat map's rows
    gate.close()


def test_dashboard_summary_carries_the_advice(advised: tuple[Path, PulseGate, Advisor]) -> None:
    _state, gate, _advisor = advised
    section = api.reports(gate)["advisor"]
    assert section["findings"][0]["kind"] == "missing_index"
    assert len(section["patterns"]["total"]["heatmap"]) == 7
    assert section["capacity"]["workers"] >= 1
    gate.close()


def test_report_and_dashboard_json_serve_one_ranked_list(tmp_path: Path, items_db: Callable[..., Path],
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """An N+1 on one endpoint and a missing index on another: `pulsegate report --json`,
    the dashboard's summary and its /api/findings list both kinds in the same order,
    highest ROI (confidence x expected saving) first, the SQL as its fingerprint."""
    db = items_db(owner=300)
    clock = [100.0]
    gate = PulseGate(state_dir=str(tmp_path / "state"), clock=lambda: clock[0],
                     wall=lambda: WALL0 + clock[0], dashboard=True, dashboard_token="t0ken")
    advisor = Advisor(gate, connect=lambda: sqlite3.connect(db), dialect="sqlite")
    for _ in range(10):
        for path, statements in (("/items", [("SELECT id FROM items WHERE owner = 7", 30.0)]),
                                 ("/authors", [(f"SELECT id, title FROM book WHERE "
                                                f"author_id = {i}", 1.0) for i in range(9)])):
            ctx = gate.begin(RequestInfo("GET", path, route=path))
            assert ctx is not None
            for i, (sql, ms) in enumerate(statements):
                ctx.add_query(QueryEvent(sql=sql, duration_ms=ms, db="sqlite", params_hash=i,
                                         call_site="app/views.py:12 in authors",
                                         relationship="Author.books"))
            clock[0] += 0.05
            gate.response_headers(ctx, 200)
            gate.finish(ctx, 200)
        clock[0] += 60.0
    advisor.run()
    gate.ops.snapshot()

    assert cli.main(["report", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    cli_rows = json.loads(capsys.readouterr().out)["query_insights"]
    dash = state(gate).dashboard
    assert dash is not None
    auth = {"authorization": "Bearer t0ken"}
    status, _, body = dash.handle("GET", "/_pulsegate/api/summary", auth, "", b"", "10.0.0.1")
    assert status == 200
    summary_rows = json.loads(body)["findings"]
    status, _, body = dash.handle("GET", "/_pulsegate/api/findings", auth, "", b"", "10.0.0.1")
    assert status == 200
    api_rows = json.loads(body)["findings"]

    def order(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(r["source"], r["kind"], r["endpoint"]) for r in rows]

    assert order(cli_rows) == order(summary_rows) == order(api_rows) == [
        ("advisor", "missing_index", "GET /items"), ("nplusone", "n_plus_one", "GET /authors")]
    rois = [r["roi"] for r in summary_rows]
    assert rois == sorted(rois, reverse=True) and all(r > 0 for r in rois)
    for rows in (cli_rows, summary_rows):
        for r in rows:
            assert r["roi"] == pytest.approx(r["confidence"] * r["saving_ms_per_min"])
            assert "= ?" in r["sql"] and "= 7" not in r["sql"] and "= 3" not in r["sql"]
    index, n1 = summary_rows
    assert index["fix"] == "CREATE INDEX ix_items_owner ON items (owner);"
    assert n1["call_site"] == "app/views.py:12 in authors" and n1["fix"]
    # the N+1's saving from its measured time: 9 ms per request, 8 of 9 statements go,
    # 10 requests from the first to the last over 9 x 60.1 s
    assert n1["saving_ms_per_min"] == pytest.approx(9.0 * 8 / 9 * 10 / (9 * 60.1 / 60))
    gate.close()
