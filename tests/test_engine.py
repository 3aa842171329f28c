"""The framework-free engine: begin / response_headers / finish, fail-open, contexts."""

from __future__ import annotations

import logging
import math
import threading
from itertools import pairwise

import pytest

from fakeclock import FakeClock
from pulsegate.context import current, query_sink
from pulsegate.engine import PulseGate
from pulsegate.learn import BaselineStore, EndpointModel
from pulsegate.queries.events import QueryEvent
from pulsegate.records import UNMATCHED, RequestInfo, RequestRecord
from threadburst import in_threads


def record_statement(sql: str) -> None:
    """What an ORM hook does with a statement: hand it to the innermost live sink."""
    sink = query_sink.get()
    if sink is not None and not sink.finished:
        sink.add_query(QueryEvent(sql=sql, duration_ms=0.5))


def make_gate(**options: object) -> tuple[PulseGate, FakeClock, FakeClock]:
    clock, cpu = FakeClock(100.0), FakeClock(100.0)
    return PulseGate(clock=clock, cpu_clock=cpu, wall=lambda: 1.7e9, **options), clock, cpu


def serve(gate: PulseGate, clock: FakeClock, cpu: FakeClock, ms: float, *, route: str = "/x",
          method: str = "GET", status: int = 200, ttfb_ms: float | None = None,
          queries: int = 0) -> dict[str, str]:
    ctx = gate.begin(RequestInfo(method, "/x/1", route))
    assert ctx is not None
    for _ in range(queries):
        ctx.add_query(QueryEvent(sql="SELECT 1", duration_ms=0.5))
    clock.t += (ttfb_ms if ttfb_ms is not None else ms) / 1000
    cpu.t += ms / 2000
    headers = dict(gate.response_headers(ctx, status))
    clock.t += (ms - (ttfb_ms if ttfb_ms is not None else ms)) / 1000
    record = gate.finish(ctx)
    assert record is not None
    serve.last = record  # type: ignore[attr-defined]
    return headers


def test_record_carries_every_measurement() -> None:
    gate, clock, cpu = make_gate(warmup=3)
    serve(gate, clock, cpu, 40.0, ttfb_ms=10.0, queries=3, status=201)
    r = serve.last  # type: ignore[attr-defined]
    assert (r.method, r.route, r.path, r.status) == ("GET", "/x", "/x/1", 201)
    assert r.ttfb_ms == pytest.approx(10.0) and r.duration_ms == pytest.approx(40.0)
    assert r.cpu_ms == pytest.approx(20.0)
    assert (r.query_count, r.query_ms) == (3, pytest.approx(1.5))
    assert r.endpoint == "GET /x" and r.started_at == 1.7e9


def test_a_records_wall_time_is_its_clock_time_and_the_wall_is_reread_once_a_second() -> None:
    clock, wall_reads = FakeClock(100.0), []
    wall = {"t": 1.7e9}

    def read_wall() -> float:
        wall_reads.append(clock.t)
        return wall["t"]

    gate = PulseGate(clock=clock, cpu_clock=FakeClock(100.0), wall=read_wall)
    wall_reads.clear()  # (the constructor may read it)

    def started_at() -> float:
        ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
        assert ctx is not None
        record = gate.finish(ctx)
        assert record is not None
        return record.started_at

    assert started_at() == 1.7e9 and wall_reads == [100.0]
    clock.t += 0.25
    wall["t"] += 0.25
    assert started_at() == pytest.approx(1.7e9 + 0.25)
    clock.t += 0.5  # still within the second: the wall is not read again
    wall["t"] += 3600.0  # ... so a step of the wall clock is not seen yet
    assert started_at() == pytest.approx(1.7e9 + 0.75) and len(wall_reads) == 1
    clock.t += 0.5  # a second after the last read
    assert started_at() == pytest.approx(1.7e9 + 3600.0 + 0.25) and len(wall_reads) == 2


def test_cpu_and_memory_are_measured_on_the_first_request_of_every_n() -> None:
    gate, clock, cpu = make_gate(warmup=3, cpu_sample_every=3, memory_sample_every=2)
    records = []
    for _ in range(7):
        serve(gate, clock, cpu, 40.0)
        records.append(serve.last)  # type: ignore[attr-defined]
    assert [r.cpu_ms is not None for r in records] == [True, False, False] * 2 + [True]
    assert all(r.cpu_ms == pytest.approx(20.0) for r in records if r.cpu_ms is not None)
    assert [r.memory_blocks is not None for r in records] == [True, False] * 3 + [True]
    model = gate.baselines.peek("GET /x")
    assert model is not None  # the CPU level is learned from the samples alone
    assert math.expm1(model.level[gate.metrics.index("cpu")]) == pytest.approx(20.0)
    odd, clock, cpu = make_gate(cpu_sample_every=3, memory_sample_every=5)
    got = []
    for _ in range(31):
        serve(odd, clock, cpu, 5.0)
        r = serve.last  # type: ignore[attr-defined]
        got.append((r.cpu_ms is not None, r.memory_blocks is not None))
    assert got == [(i % 3 == 0, i % 5 == 0) for i in range(31)]
    every, _, _ = make_gate(cpu_sample_every=1)
    assert every.sampler.cpu_every == 1
    off, clock, cpu = make_gate(measure_cpu=False)
    serve(off, clock, cpu, 40.0)
    assert serve.last.cpu_ms is None and "cpu" not in off.metrics  # type: ignore[attr-defined]


def test_a_dear_block_count_stretches_the_memory_sample_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    gate, clock, cpu = make_gate(memory_sample_every=4, measure_cpu=False)
    blocks = sys.getallocatedblocks

    def big_heap() -> int:  # a read that takes 0.1 ms, as in a heap of a few M objects
        clock.t += 1e-4
        return blocks()

    monkeypatch.setattr(sys, "getallocatedblocks", big_heap)
    sampled = []
    for _ in range(2000):
        serve(gate, clock, cpu, 5.0)
        sampled.append(serve.last.memory_blocks is not None)  # type: ignore[attr-defined]
    # two 0.1 ms reads per sample, 0.25 µs per request on average: one request in 800
    # (801: the fake clock's float steps are not exactly 0.1 ms), reached by steps of at
    # most four times the interval before
    at = [i for i, s in enumerate(sampled) if s]
    gaps = [b - a for a, b in pairwise(at)]
    assert at[0] == 0 and gaps[:3] == [16, 64, 256] and all(800 <= g <= 801 for g in gaps[3:])
    assert len(gaps) == 5
    fixed, clock, cpu = make_gate(memory_sample_every=4, measure_cpu=False,
                                  memory_sample_budget_us=0)
    for _ in range(12):
        serve(fixed, clock, cpu, 5.0)
        sampled.append(serve.last.memory_blocks is not None)  # type: ignore[attr-defined]
    assert sampled[-12:] == [True, False, False, False] * 3


def test_a_dear_cpu_clock_stretches_the_cpu_sample_interval() -> None:
    clock = FakeClock(100.0)

    def slow_cpu_clock() -> float:  # a system call of 1 µs, as in a VM
        clock.t += 1e-6
        return 0.0

    gate = PulseGate(clock=clock, cpu_clock=slow_cpu_clock, wall=lambda: 1.7e9,
                     cpu_sample_every=4, measure_memory=False)
    timed = []
    for _ in range(100):
        ctx = gate.begin(RequestInfo("GET", "/x"))
        assert ctx is not None
        timed.append(ctx.cpu0 is not None)
        gate.finish(ctx)
    # two 1 µs reads per sample, 0.1 µs per request: one request in 20, not one in 4
    assert [i for i, t in enumerate(timed) if t] == [0, 16, 36, 56, 76, 96]
    fixed = PulseGate(clock=clock, cpu_clock=slow_cpu_clock, cpu_sample_every=4,
                      cpu_sample_budget_us=0, measure_memory=False)
    assert fixed.sampler.take(0)[2] == 4


def test_the_scheduler_starts_on_the_first_request_and_soon_after_a_job_is_added() -> None:
    gate, clock, cpu = make_gate(measure_cpu=False, measure_memory=False)
    scheduler = gate.scheduler
    scheduler.jobs.clear()
    serve(gate, clock, cpu, 5.0)
    assert not scheduler.started  # nothing to run yet
    scheduler.every(3600.0, lambda: None, name="later")
    try:
        for _ in range(64):  # at most 64 requests after the job came
            serve(gate, clock, cpu, 5.0)
            if scheduler.started:
                break
        assert scheduler.started
    finally:
        scheduler.stop()


@pytest.mark.parametrize("options", [{}, {"measure_memory": False},
                                     {"query_analysis": False}, {"measure_cpu": False}])
def test_any_metric_set_learns_a_request_without_sql(options: dict[str, bool]) -> None:
    gate, clock, cpu = make_gate(warmup=3, cpu_sample_every=2, memory_sample_every=5,
                                 **options)
    for _ in range(6):
        serve(gate, clock, cpu, 10.0)  # each request: 10 ms, 5 ms of CPU
    model = gate.baselines.peek("GET /x")
    assert model is not None and model.n == 6 and not model.queried
    learned = dict(zip(model.metrics, zip(model.level, model.var, strict=True), strict=True))
    assert learned["latency"][0] == pytest.approx(math.log(10.0))
    if "cpu" in learned:  # sampled on requests 0, 2 and 4
        assert learned["cpu"] == (pytest.approx(math.log1p(5.0)), pytest.approx(0.0))
    for metric in ("queries", "query_time", "repeat_share"):  # no SQL: nothing learned
        assert learned.get(metric, (0.0, 0.0)) == (0.0, 0.0)


def test_headers_carry_forecast_confidence_and_score_after_warmup() -> None:
    gate, clock, cpu = make_gate(warmup=5)
    for _ in range(20):
        h = serve(gate, clock, cpu, 50.0)
    assert float(h["x-ml-predicted-latency-ms"]) == pytest.approx(50.0, rel=0.01)
    assert 90 <= int(h["x-ml-prediction-confidence"]) <= 100
    assert h["x-ml-anomaly-score"] == "0.000"
    assert h["x-ml-optimization-applied"] == "none"
    assert "x-ml-query-count" not in h and "x-ml-nplusone" not in h  # no SQL ran
    assert h["x-ml-model-version"] == gate.model_version
    slow = serve(gate, clock, cpu, 500.0)
    assert float(slow["x-ml-anomaly-score"]) > 0.9
    assert gate.stats()["anomalies"] == 1
    assert gate.recent_anomalies[-1].duration_ms == pytest.approx(500.0)


def test_header_exposure_modes() -> None:
    for mode, expected in (("none", set()),
                           ("safe", {"x-ml-optimization-applied", "x-ml-model-version"})):
        gate, clock, cpu = make_gate(headers=mode)
        assert set(serve(gate, clock, cpu, 5.0)) == expected
    gate, clock, cpu = make_gate(query_analysis=False, performance_prediction=False,
                                 anomaly_detection=False)
    assert set(serve(gate, clock, cpu, 5.0)) == {"x-ml-optimization-applied",
                                                  "x-ml-model-version"}


def test_unknown_routes_and_methods_fold_into_bounded_keys() -> None:
    gate, clock, cpu = make_gate()
    ctx = gate.begin(RequestInfo("BREW", "/random/123", None))
    assert ctx is not None
    record = gate.finish(ctx, status=404)
    assert record is not None and record.route == UNMATCHED and record.method == "OTHER"
    assert list(gate.baselines) == [f"OTHER {UNMATCHED}"]


def test_max_endpoints_caps_models() -> None:
    gate, clock, cpu = make_gate(max_endpoints=10)
    for i in range(50):
        serve(gate, clock, cpu, 1.0, route=f"/r{i}")
    assert len(gate.baselines) == 10 and gate.stats()["endpoint_evictions"] == 40


def test_excluded_paths_are_not_measured() -> None:
    gate, _, _ = make_gate(exclude_paths=["/health", "/static"])
    for path in ("/health", "/health/db", "/static/app.js"):
        assert gate.begin(RequestInfo("GET", path)) is None
    ctx = gate.begin(RequestInfo("GET", "/healthcare"))
    assert ctx is not None
    gate.finish(ctx)
    assert gate.stats()["excluded"] == 3


def test_disabled_gate_passes_everything_through() -> None:
    gate, _, _ = make_gate(enabled=False)
    assert gate.begin(RequestInfo("GET", "/x")) is None


def test_error_is_recorded_as_500() -> None:
    gate, _, _ = make_gate()
    ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
    assert ctx is not None
    record = gate.finish(ctx, error=RuntimeError("boom"))
    assert record is not None and record.status == 500 and record.error == "RuntimeError"
    assert gate.stats()["errors"] == 1


def test_finish_is_idempotent_and_leaves_no_current_request() -> None:
    gate, _, _ = make_gate()
    ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
    assert current() is ctx
    assert gate.finish(ctx, status=200) is not None
    assert gate.finish(ctx, status=200) is None
    assert current() is None
    assert gate.stats()["requests"] == 1


def test_a_capture_around_a_request_collects_again_once_it_finished() -> None:
    from pulsegate import capture

    gate, _, _ = make_gate()
    with capture() as cap:
        ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
        assert current() is ctx
        record_statement("SELECT 1")  # the request's
        gate.finish(ctx, status=200)
        assert current() is None
        record_statement("SELECT 2")  # the capture's again
    assert [q.sql for q in cap.queries] == ["SELECT 2"] and ctx.query_count == 1


def test_context_is_per_thread() -> None:
    gate, _, _ = make_gate()
    seen: list[object] = []
    ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
    t = threading.Thread(target=lambda: seen.append(current()))
    t.start()
    t.join()
    assert seen == [None] and current() is ctx
    gate.finish(ctx)


def test_internal_faults_fail_open_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    gate, clock, cpu = make_gate()

    def broken(record: object, ctx: object) -> None:
        raise ValueError("exporter down")

    class BrokenStore(BaselineStore):
        def get(self, key: str) -> EndpointModel:
            raise AttributeError("model store corrupted")

    gate.listeners.append(broken)
    gate.baselines = BrokenStore(EndpointModel)  # every request now faults
    with caplog.at_level(logging.WARNING, logger="pulsegate"):
        for _ in range(5):
            ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
            assert ctx is not None
            assert gate.response_headers(ctx, 200) == []
            assert gate.finish(ctx) is None
    stats = gate.stats()
    assert stats["internal_errors"] >= 10
    assert {k: v for k, v in stats["internal_errors_by_kind"].items()
            if k.startswith(("response_headers", "finish"))} == {
        "response_headers:AttributeError": 5, "finish:AttributeError": 5}
    logged = [r for r in caplog.records if "internal error in" in r.getMessage()
              and ("response_headers" in r.getMessage() or "in finish" in r.getMessage())]
    assert len(logged) == 2
    assert current() is None  # the context was still reset


def test_failing_listener_does_not_lose_the_record() -> None:
    gate, clock, cpu = make_gate()
    gate.listeners.append(lambda record, ctx: 1 / 0)  # type: ignore[arg-type,func-returns-value]
    seen: list[object] = []
    gate.listeners.append(lambda record, ctx: seen.append(record))
    serve(gate, clock, cpu, 3.0)
    assert len(seen) == 1
    assert gate.stats()["internal_errors_by_kind"].get(
        "listener test_failing_listener_does_not_lose_the_record.<locals>.<lambda>:ZeroDivisionError") == 1


def test_begin_fault_passes_request_through() -> None:
    gate, _, _ = make_gate()

    def boom() -> float:
        raise OSError("clock gone")

    gate.clock = boom
    assert gate.begin(RequestInfo("GET", "/x")) is None
    assert gate.stats()["internal_errors_by_kind"].get("begin:OSError") == 1


def test_incidents_recorded_once_per_sustained_shift() -> None:
    gate, clock, cpu = make_gate(aggregation_window=1)
    for second in range(200):
        for _ in range(5):
            serve(gate, clock, cpu, 10.0 if second < 150 else 80.0)
            clock.t += 0.2 - 0.01 if second < 150 else 0.2 - 0.08
    assert 1 <= gate.stats()["incidents"] <= 3  # the shift, not an alarm per window
    assert all(i["endpoint"] == "GET /x" for i in gate.incidents)
    assert max(i["window_mean_ms"] for i in gate.incidents) > 14


def test_endpoints_summary_sorted_by_traffic() -> None:
    gate, clock, cpu = make_gate()
    for _ in range(3):
        serve(gate, clock, cpu, 1.0, route="/a")
    serve(gate, clock, cpu, 1.0, route="/b")
    rows = gate.endpoints()
    assert [r["endpoint"] for r in rows] == ["GET /a", "GET /b"]
    assert rows[0]["requests"] == 3


def test_the_model_version_header_is_printable_ascii_whatever_was_stored() -> None:
    gate, _, _ = make_gate()
    gate.model_version = "2.0\r\nx-evil: 1 \u00e9"
    assert gate.model_version == "2.0??x-evil: 1 ?"


def test_finish_without_record_builds_one_only_when_something_consumes_it() -> None:
    gate, clock, cpu = make_gate(warmup=3)

    def serve_quiet(ms: float) -> object:
        ctx = gate.begin(RequestInfo("GET", "/x/1", "/x"))
        assert ctx is not None
        clock.t += ms / 1000
        gate.response_headers(ctx, 200)
        return gate.finish(ctx, record=False)

    assert [serve_quiet(10.0) for _ in range(20)] == [None] * 20
    model = gate.baselines.peek("GET /x")
    assert model is not None and model.n == 20  # learned all the same
    assert gate.counters["requests"] == 20
    slow = serve_quiet(500.0)  # an anomaly: recorded for the notable consumers
    assert slow is not None and slow.duration_ms == pytest.approx(500.0)
    assert gate.recent_anomalies[-1] is slow
    seen: list[object] = []
    gate.listeners.append(lambda record, ctx: seen.append(record))
    assert serve_quiet(10.0) is not None and len(seen) == 1  # a listener consumes every one


def test_a_busy_endpoint_survives_eviction_through_the_engines_index() -> None:
    gate, clock, cpu = make_gate(max_endpoints=2)
    serve(gate, clock, cpu, 5.0, route="/busy")
    serve(gate, clock, cpu, 5.0, route="/other")
    serve(gate, clock, cpu, 5.0, route="/busy")  # found through the index: referenced
    serve(gate, clock, cpu, 5.0, route="/new")  # needs room: /other goes, /busy stays
    assert set(gate.baselines) == {"GET /busy", "GET /new"}
    busy = gate.baselines.peek("GET /busy")
    assert busy is not None and busy.n == 2


def test_requests_from_many_threads_never_stop_the_samples() -> None:
    """Attack probe (hsec4): a burst of requests on a threaded server (8 threads, a
    thread switch every microsecond) must leave CPU and memory sampled afterwards --
    the request counter passing the next request due to sample while a thread sampled
    stopped them for the life of the process (next_take 4 after 24 000 requests)."""
    gate = PulseGate(log_events=False, cpu_sample_every=1, memory_sample_every=1,
                     cpu_sample_budget_us=0, memory_sample_budget_us=0)  # (no stretch)
    info = RequestInfo("GET", "/x", "/x")

    def burst(_: int) -> None:
        for _ in range(1_500):
            ctx = gate.start(info)
            if ctx is not None:
                gate.finish(ctx, 200)

    in_threads(burst)
    records: list[RequestRecord] = []
    gate.listeners.append(lambda record, ctx: records.append(record))
    for _ in range(200):
        ctx = gate.start(info)
        assert ctx is not None
        gate.finish(ctx, 200)
    assert all(r.cpu_ms is not None and r.memory_blocks is not None for r in records)
    gate.close()


def test_a_gate_with_every_option_on_keeps_its_attributes_in_cpythons_shared_keys(
        tmp_path: object) -> None:
    """Past 30 instance attributes CPython gives an object a dict of its own and the
    request path's calls on the gate take the generic look-up (37 attributes: Django
    +4.5 k instructions and +351 L1 data misses a request, ``instructions.py --misses``,
    e41b8d4); optional parts (the multivariate model, the advisor) are reached through
    properties instead."""
    gate = PulseGate(
        multivariate=True, advisor=True, rate_limiting=True, resource_allocation=True,
        healing_actions=[{"do": "shed", "priority": "low"}], response_cache=True,
        prometheus=True, dashboard=True, dashboard_allow_loopback=True,
        state_dir=str(tmp_path), log_events=True, otel=True, cache_monitoring=True,
        outbound_monitoring=True, auto_tuning=True)
    try:
        assert len(vars(gate)) <= 30, sorted(vars(gate))
        assert gate.multivariate is not None and gate.advisor is not None
    finally:
        gate.close()
    plain = PulseGate()
    assert plain.multivariate is None and plain.advisor is None
