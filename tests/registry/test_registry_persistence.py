"""Warm restarts, damaged state, component state, several real processes on one file."""

import json
import logging
import math
import multiprocessing
import sqlite3
from typing import Any

import pytest
from registry_helpers import hit, make_gate, warm
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate
from pulsegate.registry.store import DB_NAME, SQLiteStore


class StepClock:
    """Advances by a repeating pattern of steps on every call: deterministic latencies."""

    def __init__(self, steps=(0.004, 0.006, 0.005, 0.009, 0.003)):
        self.t, self.i, self.steps = 100.0, 0, steps

    def __call__(self) -> float:
        self.t += self.steps[self.i % len(self.steps)]
        self.i += 1
        return self.t


def make_app(state_dir) -> tuple[TestClient, PulseGate]:
    async def item(request):
        return PlainTextResponse("ok")

    gate = PulseGate(state_dir=str(state_dir), clock=StepClock(), measure_cpu=False,
                     measure_memory=False)
    app = Starlette(routes=[Route("/items/{id}", item)])
    app.add_middleware(PulseGateMiddleware, gate=gate)
    return TestClient(app), gate


def test_restarted_app_is_warm(tmp_path) -> None:
    client, gate = make_app(tmp_path)
    for i in range(60):
        assert client.get(f"/items/{i}").status_code == 200
    gate.close()  # shutdown: final snapshot
    # the same request to the old process and to a freshly started one
    before = client.get("/items/1").headers
    client2, gate2 = make_app(tmp_path)
    after = client2.get("/items/1").headers
    assert float(before["x-ml-prediction-confidence"]) > 50
    assert after["x-ml-prediction-confidence"] == before["x-ml-prediction-confidence"]
    assert after["x-ml-predicted-latency-ms"] == before["x-ml-predicted-latency-ms"]
    assert gate2.baselines.peek("GET /items/{id}").n == 61
    # without the state the first response has no confidence at all
    cold_client, cold = make_app(tmp_path / "other")
    assert cold_client.get("/items/1").headers["x-ml-prediction-confidence"] == "0"
    gate2.close()
    cold.close()


def test_snapshot_runs_on_the_scheduler_interval(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path), snapshot_interval=30)
    assert gate.scheduler.jobs["pulsegate.snapshot"].interval == 30
    warm(gate, clk, 35)
    gate.scheduler.run_pending(gate.scheduler.clock() + 31)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    rows = conn.execute("SELECT key FROM kv WHERE section LIKE 'ep:%'").fetchall()
    conn.close()
    assert rows == [("GET /x",)]
    reg = gate.stats()["registry"]
    assert (reg["store"], reg["snapshots"], reg["snapshot_failures"]) == ("sqlite", 1, 0)
    assert reg["versions"]["latency-baseline"] == "1.0.0"
    gate.scheduler.stop()


def test_damaged_state_file_means_cold_start_not_crash(tmp_path, caplog) -> None:
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 512)
    with caplog.at_level(logging.WARNING, logger="pulsegate.registry"):
        gate, clk = make_gate(state_dir=str(tmp_path))
    assert "moved it to" in caplog.text
    assert list(tmp_path.glob(DB_NAME + ".corrupt-*"))
    assert len(gate.baselines) == 0 and gate.faults.total == 0
    warm(gate, clk, 40)
    gate.close()
    again, _ = make_gate(state_dir=str(tmp_path))
    assert again.baselines.peek("GET /x").n == 40
    again.close()


def test_an_unloadable_endpoint_state_is_skipped(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40, path="/a")
    warm(gate, clk, 40, path="/b")
    gate.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE kv SET value = '{\"state\": {\"metrics\": [\"latency\"], \"n\": -4, "
                 "\"level\": [1], \"var\": [0]}, \"own\": 4}' WHERE key = 'GET /a'")
    conn.commit()
    conn.close()
    again, _ = make_gate(state_dir=str(tmp_path))
    assert again.baselines.peek("GET /a") is None
    assert again.baselines.peek("GET /b").n == 40
    assert again.faults.total == 1
    again.close()


def test_registry_labels_and_predictions_survive_a_restart(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40)
    rec = hit(gate, clk, 30.0)
    pid = gate.ops.predictions.id_of(rec)
    assert gate.feedback(pid, True)
    gate.registry.update("latency-baseline", {"threshold": 0.6}, note="manual")
    gate.close()
    again, _ = make_gate(state_dir=str(tmp_path))
    assert again.registry.active("latency-baseline").version == "1.1.0"
    assert again.model_version == "1.1.0"
    assert again.ops.monitor.metrics("latency-baseline").tp == 1
    assert again.ops.predictions.get(pid).correct is True
    assert again.feedback(pid, False)  # ids from before the restart still accept feedback
    again.close()


def test_component_states_are_restored(tmp_path) -> None:
    opts = dict(state_dir=str(tmp_path), rate_limiting=True, resource_allocation=True)
    gate, clk = make_gate(**opts)
    alloc = gate.ops.component("allocator")
    lim = gate.ops.component("rate-limit-behaviour")
    assert alloc is not None and lim is not None
    alloc.load_state({**alloc.state()})  # round-trips on its own
    lim.behaviour.penalties["10.0.0.9"] = 0.8
    saved = alloc.state()
    gate.close()
    again, _ = make_gate(**opts)
    assert again.ops.component("allocator").state() == saved
    assert again.ops.component("rate-limit-behaviour").behaviour.penalties["10.0.0.9"] == 0.8
    again.close()


def _worker(state_dir: str, ms: float, rounds: int) -> None:
    from registry_helpers import make_gate, warm

    gate, clk = make_gate(state_dir=state_dir)
    for _ in range(rounds):
        warm(gate, clk, 10, ms=ms, path="/x")
        warm(gate, clk, 2, ms=ms, path=f"/only-{int(ms)}")
        gate.ops.snapshot()
    gate.close()


def test_several_processes_share_one_sqlite_file(tmp_path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), ms, 15)) for ms in (10, 20, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM kv WHERE section = 'workers'").fetchone()[0] == 3
    conn.close()
    assert not list(tmp_path.glob("*.corrupt-*"))
    gate, clk = make_gate(state_dir=str(tmp_path))
    # the fleet baseline of the shared endpoint: Chan merge of three equal-weight workers
    predicted = gate.baselines.peek("GET /x").predict()[0]
    assert math.isclose(predicted, math.exp((math.log(10) + math.log(20) + math.log(40)) / 3),
                        rel_tol=0.02)
    for ms in (10, 20, 40):
        assert math.isclose(gate.baselines.peek(f"GET /only-{ms}").predict()[0], ms, rel_tol=0.02)
    assert gate.faults.total == 0
    gate.close()


def _rows(path, sql):
    conn = sqlite3.connect(path / DB_NAME)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_snapshots_rewrite_only_endpoints_that_changed(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 35, path="/a")
    warm(gate, clk, 35, path="/b")
    gate.ops.snapshot()
    first = dict(_rows(tmp_path, "SELECT key, updated FROM kv WHERE section LIKE 'ep:%'"))
    gate.test_wall.t += 10
    warm(gate, clk, 3, path="/b")
    gate.ops.snapshot()
    second = dict(_rows(tmp_path, "SELECT key, updated FROM kv WHERE section LIKE 'ep:%'"))
    assert second["GET /a"] == first["GET /a"] and second["GET /b"] > first["GET /b"]
    gate.close()


def test_a_restarted_worker_absorbs_the_rows_it_was_seeded_from(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40)
    gate.close()
    old = gate.ops.worker
    again, clk2 = make_gate(state_dir=str(tmp_path), wall_start=gate.test_wall.t + 5)
    warm(again, clk2, 5)
    again.ops.snapshot()
    sections = {r[0] for r in _rows(tmp_path, "SELECT DISTINCT section FROM kv")}
    assert f"ep:{old}" not in sections and f"ep:{again.ops.worker}" in sections
    row = again.ops.store.read(f"ep:{again.ops.worker}")["GET /x"]
    assert row["own"] == 5 and row["state"]["n"] == 45  # own requests vs inherited ones
    again.close()
    third, _ = make_gate(state_dir=str(tmp_path))
    assert third.baselines.peek("GET /x").n == 45
    third.close()


def test_cleanup_drops_silent_workers_and_trims_predictions(tmp_path) -> None:
    gate, clk = make_gate(state_dir=str(tmp_path), max_predictions=10, state_ttl=3600)
    store = gate.ops.store
    store.write([("workers", "ghost", {"updated": gate.test_wall.t - 7200}),
                 ("ep:ghost", "GET /x", {"state": {}, "own": 1}),
                 ("insights:ghost", "k", {"requests": 1})])
    store.write([("predictions", f"p{i}", {"at": float(i)}) for i in range(15)])
    warm(gate, clk, 3)
    gate.ops.snapshot()
    gate.ops.cleanup_job()
    assert "ghost" not in store.read("workers")
    assert store.sections("ep:ghost") == [] and store.sections("insights:ghost") == []
    preds = store.read("predictions")
    assert len(preds) == 10 and "p0" not in preds and "p14" in preds
    assert gate.ops.worker in store.read("workers")
    gate.close()


def test_feedback_reaching_another_worker_is_routed_through_the_store(tmp_path) -> None:
    a, ca = make_gate(state_dir=str(tmp_path))
    b, _ = make_gate(state_dir=str(tmp_path))
    warm(a, ca, 40)
    pid = a.ops.predictions.id_of(hit(a, ca, 40.0))
    a.ops.snapshot()
    assert b.ops.predictions.get(pid) is None
    assert b.feedback(pid, False)  # accepted: the id has another worker's tag
    assert not b.feedback("not an id", True)
    assert not b.feedback(b.ops.predictions.tag + "-ffff", True)  # ours, but unknown
    b.ops.snapshot()  # resolves it in the store and writes the label
    assert b.ops.monitor.metrics("latency-baseline").fp == 1
    a.ops.monitoring_job()  # the owner picks the label up
    assert a.ops.monitor.metrics("latency-baseline").fp == 1
    assert a.ops.predictions.get(pid).correct is False
    memory_only, _ = make_gate()
    assert not memory_only.feedback(pid, True)
    for g in (a, b, memory_only):
        g.close()


def test_an_unusable_state_dir_is_counted_and_the_gate_runs_from_memory(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    gate, clk = make_gate(state_dir=str(blocker / "state"))
    assert gate.ops.store is None and "pulsegate.snapshot" not in gate.scheduler.jobs
    assert any(k.startswith("registry.open_store") for k in gate.faults.by_kind)
    warm(gate, clk, 31)
    assert gate.baselines.peek("GET /x").n == 31
    gate.close()


def _damage_row(state_dir, key: str, change) -> None:
    """Rewrite the persisted JSON of ``key`` through ``change(value) -> value``."""
    conn = sqlite3.connect(state_dir / DB_NAME)
    (raw,) = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    conn.execute("UPDATE kv SET value = ? WHERE key = ?",
                 (json.dumps(change(json.loads(raw))), key))
    conn.commit()
    conn.close()


def _set(path: tuple[Any, ...], value: Any):
    def change(data: Any) -> Any:
        node = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return data
    return change


@pytest.mark.parametrize("n", [math.nan, math.inf, "x", [1]])
def test_one_endpoint_with_a_damaged_count_does_not_lose_the_others(tmp_path, n) -> None:
    """Attack probe (hsec6): the endpoints were restored in order of their count,
    ``int(state["n"])`` in the sort key -- one endpoint's NaN (a hostile or damaged row)
    raised out of the sort and every endpoint, component, prediction and label of the
    state started cold. Now that one endpoint is refused, counted, and the rest warm."""
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40, path="/a")
    warm(gate, clk, 40, path="/b")
    gate.close()
    _damage_row(tmp_path, "GET /a", _set(("state", "n"), n))
    again, _ = make_gate(state_dir=str(tmp_path))
    assert again.baselines.peek("GET /a") is None
    assert again.baselines.peek("GET /b").n == 40
    assert again.faults.total == 1
    assert all(k.startswith("registry.restore endpoint:") for k in again.faults.by_kind)
    again.close()


@pytest.mark.parametrize("level", [1e30, -1e30, 1e308])
def test_a_restored_level_no_measurement_reaches_is_refused(tmp_path, level) -> None:
    """Attack probe (hsec6): a finite but absurd level (log scale: 1e30 is e^1e30
    queries) passed the load check and overflowed in the request path at the next
    floor refresh (``finish:OverflowError``, the request's learning lost)."""
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40, path="/a")
    gate.close()
    _damage_row(tmp_path, "GET /a", _set(("state", "level", 1), level))
    again, clk = make_gate(state_dir=str(tmp_path))
    warm(again, clk, 64, path="/a")
    assert list(again.faults.by_kind) == ["registry.restore endpoint:ValueError"]
    assert again.baselines.peek("GET /a").n == 64  # started cold, learning
    again.close()


@pytest.mark.parametrize("threshold", [0.0, -1.0, "NaN"])
def test_a_persisted_threshold_of_zero_or_less_never_faults_a_request(tmp_path,
                                                                   threshold) -> None:
    """Attack probe (hsec6): the latency model's deployed threshold 0 (a tuning grid
    from 0 allows it; a damaged state) became k = 0, which every floor refresh divides
    by: ``finish:ZeroDivisionError`` every 32 requests of every endpoint; NaN made every
    anomalous request's score NaN and its headers a fault."""
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40, path="/a")
    gate.close()
    value = math.nan if threshold == "NaN" else threshold
    _damage_row(tmp_path, "latency-baseline@1.0.0", _set(("config", "threshold"), value))
    again, clk = make_gate(state_dir=str(tmp_path))
    warm(again, clk, 70, path="/a")
    warm(again, clk, 70, path="/new")
    slow = hit(again, clk, 500.0, path="/a")  # (NaN before: a NaN score, headers lost)
    assert slow is not None and 0.0 <= slow.anomaly_score <= 1.0
    assert again.faults.total == 0
    again.close()


@pytest.mark.parametrize("row", ["x", [1, 2], {"at": "soon"}, {"at": "nan"}])
def test_a_damaged_prediction_row_does_not_stop_the_restore(tmp_path, row) -> None:
    """Attack probe (hsec6): the predictions were sorted by ``float(d.get("at"))``: a
    row that is not an object, or whose time is not a number, raised out of the
    restore, so the labels after it were never read back."""
    gate, clk = make_gate(state_dir=str(tmp_path))
    warm(gate, clk, 40, path="/a")
    gate.close()
    store = SQLiteStore(tmp_path)
    store.write([("predictions", "forged", row),
                 ("labels", "l1", {"id": "p1", "model": "latency-baseline", "kind": "anomaly",
                                   "score": 0.9, "predicted": True, "actual": True,
                                   "at": 1.8e9, "labelled_at": "later"})])
    store.close()
    again, _ = make_gate(state_dir=str(tmp_path))
    assert again.faults.total == 0
    assert again.ops.monitor.knows("p1")
    again.close()
