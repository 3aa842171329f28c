"""The advisor's report reaches `pulsegate report` (ranked with the N+1 insights) and the
dashboard's summary."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pulsegate import PulseGate, cli
from pulsegate.advisor import Advisor
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
