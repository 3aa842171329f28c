"""Units of work that are not requests (pulsegate.units): learnt by the gate's own
endpoint models under ``"<KIND> <name>"``, published through its own step (anomalies,
incidents, notable listeners), shown to the unit listeners only, names bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fakeclock import FakeClock
from pulsegate.context import current, query_sink
from pulsegate.engine import PulseGate
from pulsegate.queries.events import QueryEvent
from pulsegate.records import RequestInfo, RequestRecord
from pulsegate.unit_flags import flag
from pulsegate.units import (
    JOB,
    OVERFLOW_NAME,
    QUEUE,
    UPSTREAM,
    UnitRun,
    clean_name,
    is_unit,
    unit_key,
)


def make_gate(**options: Any) -> tuple[PulseGate, FakeClock, FakeClock]:
    clock, cpu = FakeClock(100.0), FakeClock(100.0)
    gate = PulseGate(clock=clock, cpu_clock=cpu, wall=lambda: 1.7e9 + clock.t, **options)
    return gate, clock, cpu


def statement(sql: str) -> None:
    """What an ORM hook does: hand the statement to the innermost live sink."""
    sink = query_sink.get()
    if sink is not None and not sink.finished:
        sink.add_query(QueryEvent(sql=sql, duration_ms=0.4, call_site="app.py:3 in job"))


def test_a_run_is_learnt_under_its_kind_and_name_and_recorded_like_a_request() -> None:
    gate, clock, cpu = make_gate(warmup=3)
    seen: list[tuple[RequestRecord, Any]] = []
    gate.unit_listeners.append(lambda record, run: seen.append((record, run)))
    run = gate.units.begin(JOB, "send_email")
    assert isinstance(run, UnitRun)
    clock.t += 0.25
    cpu.t += 0.1
    record = gate.units.finish(run)
    assert record is not None and is_unit(record)
    assert (record.method, record.route, record.path, record.status) == \
        ("JOB", "send_email", "send_email", 200)
    assert record.endpoint == unit_key(JOB, "send_email") == "JOB send_email"
    assert record.duration_ms == pytest.approx(250.0) and record.cpu_ms == pytest.approx(100.0)
    assert seen == [(record, run)] and run.outcome == "success"
    model = gate.baselines.peek("JOB send_email")
    assert model is not None and model.n == 1
    assert [row["endpoint"] for row in gate.endpoints()] == ["JOB send_email"]
    assert gate.stats()["units"] == {"JOB": {"names": 1, "folded": 0, "evicted": 0,
                                             "runs": {"success": 1}}}
    assert gate.counters["requests"] == 0  # a run is not a request
    assert gate.units.finish(run) is None  # idempotent


def test_request_listeners_never_see_a_run_and_unit_listeners_never_see_a_request() -> None:
    gate, clock, _ = make_gate()
    requests: list[RequestRecord] = []
    units: list[RequestRecord] = []
    gate.listeners.append(lambda r, ctx: requests.append(r))
    gate.unit_listeners.append(lambda r, run: units.append(r))
    gate.units.record(UPSTREAM, "api.example.com", 12.0)
    ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
    assert ctx is not None
    gate.finish(ctx, 200)
    assert [r.endpoint for r in requests] == ["GET /x"]
    assert [r.endpoint for r in units] == ["UPSTREAM api.example.com"]


def test_an_http_method_named_like_a_kind_stays_an_http_endpoint() -> None:
    gate, _, _ = make_gate()
    ctx = gate.begin(RequestInfo("JOB", "/x", "send_email"))
    assert ctx is not None
    record = gate.finish(ctx, 200)
    assert record is not None and record.endpoint == "OTHER send_email"
    assert not is_unit(record) and gate.baselines.peek("JOB send_email") is None


def test_outcomes_set_the_status_and_failures_are_error_evidence() -> None:
    gate, clock, _ = make_gate()
    statuses = []
    for outcome in ("success", "retry", "failure", "timeout", "no such outcome"):
        run = gate.units.begin(JOB, "charge")
        assert run is not None
        clock.t += 0.01
        record = gate.units.finish(run, outcome, error="Boom")
        assert record is not None
        statuses.append((record.status, record.error))
    assert statuses == [(200, "Boom"), (503, "Boom"), (500, "Boom"), (504, "Boom"),
                        (500, "Boom")]
    model = gate.baselines.peek("JOB charge")
    assert model is not None and model.incident.err_w == 4  # the window's failed runs


def test_a_block_that_raises_is_a_failure_named_after_the_exception_and_still_raises() -> None:
    gate, clock, _ = make_gate()
    scope = gate.units.observe(JOB, "resize")
    with pytest.raises(KeyError), scope:
        clock.t += 0.02
        raise KeyError("x")
    assert scope.record is not None
    assert (scope.record.status, scope.record.error) == (500, "KeyError")
    with gate.units.observe(JOB, "resize") as ok:
        ok.outcome = "retry"
    assert ok.record is not None and ok.record.status == 503


def test_async_blocks_measure_the_same_way() -> None:
    gate, clock, _ = make_gate()

    async def job() -> RequestRecord | None:
        async with gate.units.observe(JOB, "crawl") as scope:
            clock.t += 0.5
            await asyncio.sleep(0)
        return scope.record

    record = asyncio.run(job())
    assert record is not None and record.duration_ms == pytest.approx(500.0)


def test_names_are_cleaned_and_bounded_per_kind() -> None:
    gate, _, _ = make_gate(max_units=2)
    for name in ("a", "b", "c", "a", "d"):
        gate.units.record(JOB, name, 1.0)
    gate.units.record(UPSTREAM, "c", 1.0)  # another kind has its own cap
    assert sorted(k for k in gate.baselines) == sorted(
        ["JOB a", "JOB b", f"JOB {OVERFLOW_NAME}", "UPSTREAM c"])
    stats = gate.stats()["units"]
    assert stats["JOB"]["names"] == 2 and stats["JOB"]["folded"] == 2
    assert clean_name("a\x00b\nc") == "a?b?c" and clean_name(7) == "7"
    assert len(clean_name("é" * 1000)) == 200


def test_a_name_used_again_takes_the_slot_of_one_used_once_and_its_model_goes() -> None:
    gate, _, _ = make_gate(max_units=2)
    for name in ("a", "a", "a", "b", "c"):
        gate.units.record(JOB, name, 1.0)
    assert gate.units.name(JOB, "c") == "c"  # its second use: "b" was used once
    assert gate.baselines.peek("JOB b") is None and gate.baselines.peek("JOB a") is not None
    assert gate.stats()["units"]["JOB"]["evicted"] == 1


REAL = [f"api{i}.partner.example" for i in range(5)]


def test_one_shot_names_arriving_first_do_not_keep_the_busy_upstreams_out() -> None:
    gate, _, _ = make_gate()  # max_units 200
    for i in range(10_000):  # upstreams built from users' URLs, before any real call
        gate.units.record(UPSTREAM, f"u{i}.attacker.example", 1.0)
    routes: list[list[object]] = [[] for _ in REAL]
    for _ in range(20):
        for name, seen in zip(REAL, routes, strict=True):
            record = gate.units.record(UPSTREAM, name, 5.0)
            assert record is not None
            seen.append(record.route)
    for name, seen in zip(REAL, routes, strict=True):  # folded once at most (its first call)
        assert seen[2:] == [name] * 18 and OVERFLOW_NAME not in seen[1:]
        assert gate.baselines.peek(unit_key(UPSTREAM, name)) is not None
    stats = gate.stats()["units"]["UPSTREAM"]
    # the real five, and the few one-shot names whose four sketch counters all collided
    assert stats["names"] == 200 and 5 <= stats["evicted"] <= 50


def test_one_shot_names_arriving_later_never_take_a_busy_upstreams_slot() -> None:
    gate, _, _ = make_gate()
    for _ in range(20):
        for name in REAL:
            gate.units.record(UPSTREAM, name, 5.0)
    models = [gate.baselines.peek(unit_key(UPSTREAM, name)) for name in REAL]
    for i in range(20_000):
        gate.units.record(UPSTREAM, f"u{i}.attacker.example", 1.0)
        if i % 200 == 0:  # still in use: 1 call each per 200 of the spray
            for name in REAL:
                record = gate.units.record(UPSTREAM, name, 5.0)
                assert record is not None and record.route == name
    assert [gate.baselines.peek(unit_key(UPSTREAM, name)) for name in REAL] == models
    assert gate.stats()["units"]["UPSTREAM"]["names"] == 200


def test_sql_inside_a_run_is_analysed_and_reported_against_the_unit() -> None:
    gate, clock, _ = make_gate()
    run = gate.units.begin(JOB, "digest", sql=True)
    assert run is not None
    for i in range(8):
        statement(f"SELECT * FROM author WHERE id = {i}")
    clock.t += 0.05
    record = gate.units.finish(run)
    assert record is not None and record.query_count == 8 and record.detections >= 1
    detection = gate.detections[-1]
    assert detection["endpoint"] == "JOB digest" and detection["kind"] == "n_plus_one"
    assert detection["suggestion"]
    assert gate.baselines.peek("JOB digest").queried  # type: ignore[union-attr]


def test_a_run_inside_a_request_keeps_its_statements_and_gives_the_request_back() -> None:
    gate, clock, _ = make_gate()
    ctx = gate.begin(RequestInfo("GET", "/x", "/x"))
    assert ctx is not None
    statement("SELECT 1")
    run = gate.units.begin(JOB, "inline", sql=True)
    assert run is not None
    statement("SELECT 2")
    gate.units.finish(run)
    outbound = gate.units.begin(UPSTREAM, "api")  # sql=False: statements stay the request's
    statement("SELECT 3")
    assert outbound is not None
    gate.units.finish(outbound)
    assert current() is ctx
    assert (ctx.query_count, run.query_count, outbound.query_count) == (2, 1, 0)
    gate.finish(ctx, 200)


def test_a_unit_that_slows_down_becomes_an_incident_that_names_it() -> None:
    gate, clock, _ = make_gate(aggregation_window=10)
    notable: list[RequestRecord] = []
    gate.notable_listeners.append(lambda r, run: notable.append(r))
    for i in range(600):  # 60 windows at 20 ms, with a little spread
        clock.t += 0.5
        gate.units.record(QUEUE, "send_email", 20.0 + (i % 5))
    assert gate.counters["incidents"] == 0
    for i in range(100):  # the queue backs up: waits ten times as long
        clock.t += 0.5
        gate.units.record(QUEUE, "send_email", 200.0 + (i % 5))
    incidents = gate.incidents()
    assert incidents and incidents[0].endpoint == "QUEUE send_email"
    assert incidents[0].ratio > 5
    assert any(r.endpoint == "QUEUE send_email" for r in notable)


def test_flag_records_an_incident_found_outside_any_run() -> None:
    gate, _, _ = make_gate()
    incident = flag(gate, JOB, "nightly", "starvation", 0.7, expected_ms=3.6e6)
    assert gate.counters["incidents"] == 1
    assert gate.incidents()[-1].endpoint == "JOB nightly"
    assert (incident["metric"], incident["score"], incident["expected_ms"]) == \
        ("starvation", 0.7, 3.6e6)


def test_a_gate_that_is_off_measures_nothing_and_the_block_still_runs() -> None:
    gate, _, _ = make_gate(enabled=False)
    ran = []
    with gate.units.observe(JOB, "x") as scope:
        ran.append(1)
    assert ran == [1] and scope.run is None and len(gate.baselines) == 0
    assert gate.units.begin("NOT A KIND", "x") is None


def test_a_failing_listener_is_counted_never_raised_into_the_job() -> None:
    gate, _, _ = make_gate()

    def broken(record: RequestRecord, run: Any) -> None:
        raise RuntimeError("exporter down")

    gate.unit_listeners.append(broken)
    assert gate.units.record(JOB, "x", 5.0) is not None
    assert gate.stats()["internal_errors"] == 1


class TickingClock:
    """Every read moves time on by ``step`` seconds: a block count costs what two reads
    around it see (1 ms here, as in a large process)."""

    def __init__(self, step: float) -> None:
        self.t = 100.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_block_counts_take_at_most_one_percent_of_the_units_time() -> None:
    clock = TickingClock(0.0005)
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9)
    counted = []
    for _ in range(400):  # tiny jobs: a count each would be most of their time
        run = gate.units.begin(JOB, "tiny", memory=True)
        assert run is not None
        counted.append(run.mem0 is not None)
        gate.units.finish(run)
    spent = 1e-3 * sum(counted)
    total = clock.t - 100.0
    assert spent <= 0.01 * total + 0.05 + 1e-3
    assert 1 < sum(counted) < 100
    long_counted = []
    for _ in range(3):  # long jobs earn counts (credit comes as a run ends)
        run = gate.units.begin(JOB, "long", memory=True)
        assert run is not None
        clock.t += 10.0
        record = gate.units.finish(run)
        assert record is not None
        long_counted.append(record.memory_blocks is not None)
    assert long_counted[1:] == [True, True]


def test_a_wait_measured_elsewhere_earns_no_block_count_credit() -> None:
    """A queue wait read off a message is no time this process spent: were it credit, a
    job that waited a minute would pay for block counts on every tiny job after it."""
    clock = TickingClock(0.0005)
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9)
    counted = []
    for _ in range(400):
        gate.units.record(QUEUE, "tiny", 60_000.0)  # it waited a minute
        run = gate.units.begin(JOB, "tiny", memory=True)
        assert run is not None
        counted.append(run.mem0 is not None)
        gate.units.finish(run)
    assert 1 < sum(counted) < 100  # as without the waits (the starting credit, then 1 %)
