"""The pulsegate command against state persisted by a real gate."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "registry"))

from registry_helpers import hit, make_gate, warm

from pulsegate import cli

BIN = Path(sys.executable).parent


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, state, *argv):
    code, out, err = run(capsys, *argv, "--state-dir", str(state), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture()
def state(tmp_path):
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40)
    warm(gate, clk, 35, ms=50.0, path="/slow")
    rec = hit(gate, clk, 40.0)
    det = {"kind": "n_plus_one", "fingerprint": "select * from book where author_id = ?",
           "count": 20, "total_ms": 12.0, "confidence": 0.9,
           "suggestion": "selectinload(Author.books)", "call_site": "app.py:10 in authors"}
    gate.ops.observe_detection("GET /authors", det, 1_800_000_000.0)
    gate.ops.observe_detection("GET /tags", {**det, "fingerprint": "select * from tag",
                                             "count": 6, "total_ms": 1.0}, 1_800_000_000.0)
    gate.registry.update("latency-baseline", {"threshold": 0.7}, note="tuned")
    gate.ops.snapshot()
    gate.anomaly_id = gate.ops.predictions.id_of(rec)
    yield tmp_path, gate, clk
    gate.close()


def test_stats(state, capsys) -> None:
    path, gate, _ = state
    out = run_json(capsys, path, "stats")
    assert out["workers"] == 1 and out["totals"]["requests"] == gate.counters["requests"] == 76


def test_report_baselines_anomalies_and_roi_ranking(state, capsys) -> None:
    path, gate, _ = state
    out = run_json(capsys, path, "report")
    eps = {e["endpoint"]: e for e in out["endpoints"]}
    predicted, confidence = gate.baselines.peek("GET /slow").predict()
    assert eps["GET /slow"]["predicted_ms"] == pytest.approx(predicted)
    assert eps["GET /slow"]["confidence"] == pytest.approx(confidence)
    assert eps["GET /slow"]["low_ms"] < predicted < eps["GET /slow"]["high_ms"]
    assert gate.anomaly_id in [a["id"] for a in out["anomalies"]]
    ins = out["query_insights"]
    assert [i["endpoint"] for i in ins] == ["GET /authors", "GET /tags"]
    assert ins[0]["roi"] == pytest.approx(0.9 * 0.95 * 12.0)  # 1 call/min x 12 ms
    code, text, _ = run(capsys, "report", "--state-dir", str(path))
    assert code == 0 and "selectinload(Author.books)" in text and "GET /slow" in text


def test_models_list_show_history_and_rollback_reach_the_app(state, capsys) -> None:
    path, gate, _ = state
    rows = {r["name"]: r for r in run_json(capsys, path, "models", "list")}
    assert set(rows) >= {"latency-baseline", "n1-detector", "rate-limit-behaviour", "allocator"}
    assert rows["latency-baseline"]["version"] == "1.1.0"
    show = run_json(capsys, path, "models", "show", "latency-baseline", "1.0.0")
    assert show["config"]["threshold"] == 0.5
    hist = run_json(capsys, path, "models", "history", "latency-baseline")
    assert [(h["version"], h["active"]) for h in hist] == [("1.0.0", False), ("1.1.0", True)]
    back = run_json(capsys, path, "models", "rollback", "latency-baseline", "1.0.0")
    assert back["version"] == "1.0.0"
    # the running app picks the rollback up at its next snapshot
    assert gate.model_version == "1.1.0"
    gate.ops.snapshot()
    assert gate.model_version == "1.0.0"
    assert gate.baselines.peek("GET /x").threshold == 3.0
    code, _, err = run(capsys, "models", "rollback", "latency-baseline", "7.0.0",
                       "--state-dir", str(path))
    assert code == 2 and "unknown model or version" in err


def test_feedback_from_the_cli_reaches_the_app(state, capsys) -> None:
    path, gate, _ = state
    pending = run_json(capsys, path, "feedback")["unlabelled"]
    assert gate.anomaly_id in [p["id"] for p in pending]
    run_json(capsys, path, "feedback", gate.anomaly_id, "incorrect")
    perf = run_json(capsys, path, "feedback")["performance"]
    assert perf["latency-baseline"]["all_time"]["fp"] == 1
    assert gate.ops.monitor.metrics("latency-baseline").n == 0
    gate.ops.monitoring_job()  # the app syncs labels written elsewhere
    assert gate.ops.monitor.metrics("latency-baseline").fp == 1
    assert gate.ops.predictions.get(gate.anomaly_id).correct is False
    code, _, err = run(capsys, "feedback", "no-such-id", "correct", "--state-dir", str(path))
    assert code == 2 and "unknown prediction id" in err


def test_errors_without_state(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PULSEGATE_STATE_DIR", raising=False)
    monkeypatch.delenv("PULSEGATE_STATE_REDIS_URL", raising=False)
    code, _, err = run(capsys, "stats")
    assert code == 2 and "--state-dir" in err
    code, _, err = run(capsys, "stats", "--state-dir", str(tmp_path / "missing"))
    assert code == 2 and "no persisted state" in err


def test_plain_text_without_rich(state, capsys, monkeypatch) -> None:
    path, _, _ = state
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.table", None)
    code, out, _ = run(capsys, "models", "list", "--state-dir", str(path))
    assert code == 0
    assert "latency-baseline" in out and "----" in out and "┃" not in out


def test_demo_dispatches_to_the_demo_module(monkeypatch) -> None:
    import pulsegate.demo

    seen = []
    monkeypatch.setattr(pulsegate.demo, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["demo", "--requests", "5"]) == 0
    assert seen == [["--requests", "5"]]


def test_console_script_and_redis_state(redis_service, tmp_path) -> None:
    gate, clk = make_gate(state_redis_url=redis_service.url, state_namespace="t-cli")
    warm(gate, clk, 33)
    gate.close()
    proc = subprocess.run([str(BIN / "pulsegate"), "stats", "--redis-url", redis_service.url,
                           "--namespace", "t-cli", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["requests"] == 33


# --- for people (issue 20, problem 7) ----------------------------------------------------


@pytest.mark.parametrize("where", ["nowhere", "empty dir"])
def test_no_state_explains_where_state_comes_from(where, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PULSEGATE_STATE_DIR", raising=False)
    monkeypatch.delenv("PULSEGATE_STATE_REDIS_URL", raising=False)
    argv = ["report"] if where == "nowhere" else ["report", "--state-dir", str(tmp_path)]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "Traceback" not in err
    assert "state_dir=" in err and "--state-dir" in err and "snapshot" in err


@pytest.mark.parametrize("command", ["report", "stats"])
def test_state_without_live_workers_says_why_the_tables_are_empty(command, tmp_path,
                                                                  capsys) -> None:
    from pulsegate.registry.store import DB_NAME, SQLiteStore

    SQLiteStore(tmp_path / DB_NAME).close()  # a state file no worker has written to yet
    code, out, _ = run(capsys, command, "--state-dir", str(tmp_path))
    assert code == 0 and "no worker has written a snapshot" in out and "state_dir=" in out


def test_counts_print_as_integers(state, capsys) -> None:
    path, _, _ = state
    code, out, _ = run(capsys, "stats", "--state-dir", str(path))
    assert code == 0
    requests = next(line for line in out.splitlines() if line.startswith("requests "))
    assert requests.split() == ["requests", "76"]


def test_off_a_terminal_tables_are_plain_aligned_and_never_break_an_identifier(
        state, capsys) -> None:
    path, gate, clk = state
    fix = "options(selectinload(Author.books).selectinload(Book.reviews_with_a_long_name))"
    det = {"kind": "n_plus_one", "fingerprint": "select * from review where book_id = ?",
           "count": 30, "total_ms": 30.0, "confidence": 0.9, "suggestion": fix,
           "call_site": "a_rather_long_module_name/views/authors.py:123 in list_authors"}
    gate.ops.observe_detection("GET /authors", det, 1_800_000_000.0)
    gate.ops.snapshot()
    code, out, _ = run(capsys, "report", "--state-dir", str(path))
    assert code == 0
    lines = out.splitlines()
    assert any(fix in line and det["call_site"] in line for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("roi "))
    assert set(lines[header + 1]) == {"-", " "}  # the rule under the column names
    assert "┃" not in out and "│" not in out  # no box drawing off a terminal


def test_a_closed_pipe_ends_quietly(state, monkeypatch) -> None:
    path, _, _ = state

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self) -> bool:
            return False

        def fileno(self) -> int:
            raise OSError("no descriptor")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["--json", "report", "--state-dir", str(path)]) == 141


def test_a_closed_pipe_through_the_command_leaves_no_traceback(state) -> None:
    path, _, _ = state
    script = BIN / "pulsegate"
    proc = subprocess.Popen([str(script), "report", "--state-dir", str(path), "--limit", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert "Exception ignored" not in err, err


def test_demo_without_its_dependencies_names_the_extra(capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, out, err = run(capsys, "demo")
    assert code == 2 and "uvicorn" in err and 'pip install "pulsegate[demo]"' in err


def test_report_lists_incidents_apart_from_anomalous_requests(tmp_path, capsys) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path), aggregation_window=1)
    for second in range(200):  # 150 s at 10 ms, then 50 s at 80 ms: one regression
        for _ in range(5):
            ms = 10.0 if second < 150 else 80.0
            hit(gate, clk, ms)
            clk.t += 0.2 - ms / 1000
            gate.test_wall.t += 0.2 - ms / 1000
    gate.ops.snapshot()
    try:
        incident = gate.incidents()[0]
        out = run_json(capsys, tmp_path, "report")
        assert out["incidents"], out
        row = out["incidents"][-1]
        assert row["endpoint"] == "GET /x" and row["ratio"] == pytest.approx(incident.ratio)
        assert row["requests"] == incident.requests and row["windows"] == incident.windows
        assert row["start"] == pytest.approx(incident.start)
        assert all(a["kind"] != "incident" for a in out["anomalies"])
        code, text, _ = run(capsys, "report", "--state-dir", str(tmp_path))
        assert code == 0 and "recent incidents (an endpoint changed" in text
        assert f"{incident.ratio:.1f}x" in text and "x-ml-anomaly-score" in text
    finally:
        gate.close()
