"""Query analysis wired into the engine: headers, once-per-request analysis, logging
once per (endpoint, fingerprint) per interval, insights, capture() nesting."""

from __future__ import annotations

import logging

import pytest

from fakeclock import FakeClock
from pulsegate import capture
from pulsegate.context import current, query_sink
from pulsegate.engine import PulseGate
from pulsegate.queries import QueryEvent
from pulsegate.records import RequestInfo

pytestmark = pytest.mark.pulsegate(nplusone="off")


def loop(n: int, ms: float = 0.5) -> None:
    sink = query_sink.get()
    assert sink is not None
    sink.add_query(QueryEvent(sql="SELECT * FROM author", duration_ms=ms, params_count=0))
    for i in range(n):
        sink.add_query(QueryEvent(sql="SELECT * FROM book WHERE author_id = ?", duration_ms=ms,
                                  params_hash=i, params_count=1, call_site="app.py:9 in view"))


def request(gate: PulseGate, n: int, route: str = "/authors") -> dict[str, str]:
    ctx = gate.begin(RequestInfo("GET", route, route=route))
    assert ctx is not None
    loop(n)
    headers = dict(gate.response_headers(ctx, 200))
    gate.finish(ctx)
    return headers


def test_headers_log_once_per_interval_and_insights(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gate = PulseGate(clock=clock, query_log_interval=60)
    caplog.set_level(logging.WARNING, logger="pulsegate.queries")
    h = request(gate, 6)
    assert h["x-ml-nplusone"] == "1" and h["x-ml-query-count"] == "7"
    request(gate, 6)
    assert len([r for r in caplog.records if r.name == "pulsegate.queries"]) == 1
    assert "app.py:9 in view" in caplog.records[0].getMessage()
    clock.t += 61
    request(gate, 6)
    assert len([r for r in caplog.records if r.name == "pulsegate.queries"]) == 2
    assert request(gate, 2)["x-ml-nplusone"] == "0"
    (row,) = gate.query_insights()
    assert row["requests"] == 3 and row["statements"] == 18 and row["endpoints"] == ["GET /authors"]
    assert len(gate.detections) == 3 and gate.detections[-1]["endpoint"] == "GET /authors"


def test_detector_runs_once_unless_more_queries_arrive() -> None:
    gate = PulseGate()
    ctx = gate.begin(RequestInfo("GET", "/a", route="/a"))
    assert ctx is not None
    loop(6)
    first = gate.queries.analyze(ctx)
    assert gate.queries.analyze(ctx) is first
    loop(1)
    assert gate.queries.analyze(ctx) is not first
    gate.finish(ctx)


def test_repeat_share_drives_the_endpoint_model() -> None:
    gate = PulseGate(warmup=5)
    assert "repeat_share" in gate.metrics
    for _ in range(20):
        ctx = gate.begin(RequestInfo("GET", "/b", route="/b"))
        assert ctx is not None
        query_sink.get().add_query(QueryEvent(sql="SELECT 1", duration_ms=1.0, params_count=0))  # type: ignore[union-attr]
        gate.finish(ctx, 200)
    ctx = gate.begin(RequestInfo("GET", "/b", route="/b"))
    assert ctx is not None
    loop(1, ms=0.001)  # same count scale, but now most query time is a repeated shape
    for _ in range(3):
        loop(0, ms=0.3)
    record = gate.finish(ctx, 200)
    assert record is not None and record.anomaly_score > 0.5


def test_capture_inside_a_request_forwards_and_nests() -> None:
    gate = PulseGate()
    ctx = gate.begin(RequestInfo("GET", "/c", route="/c"))
    assert ctx is not None
    with capture(install_hooks=False) as outer:
        with capture(install_hooks=False) as inner:
            loop(5)
        loop(0)
    assert inner.query_count == 6 and outer.query_count == 7 and ctx.query_count == 7
    assert len(inner.detections) == 1 and "1 query problem" in inner.report()
    assert query_sink.get() is ctx
    gate.finish(ctx)
    assert current() is None
    with pytest.raises(AssertionError, match="at most 3"):
        inner.check(max_queries=3, nplusone=False)


def test_a_finished_request_takes_no_more_sql_and_hands_back_a_live_outer_sink() -> None:
    from sqlalchemy import create_engine

    from pulsegate.sqlalchemy import instrument

    engine = create_engine("sqlite://")
    instrument(engine)

    def sql() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1").scalar()

    gate = PulseGate()
    first = gate.begin(RequestInfo("GET", "/a", route="/a"))
    assert first is not None
    sql()
    gate.finish(first)
    sql()  # after the request, in the same context: it is not the request's
    assert first.query_count == 1 and current() is None
    with capture(install_hooks=False) as cap:  # a live sink around a request...
        inner = gate.begin(RequestInfo("GET", "/b", route="/b"))
        assert inner is not None
        sql()
        gate.finish(inner)
        sql()  # ...gets the statements after it back
    assert (inner.query_count, cap.query_count) == (1, 1)
    outer = gate.begin(RequestInfo("GET", "/c", route="/c"))  # requests nest too
    nested = gate.begin(RequestInfo("GET", "/d", route="/d"))
    assert outer is not None and nested is not None
    gate.finish(nested)
    sql()
    assert current() is outer and (outer.query_count, nested.query_count) == (1, 0)
    gate.finish(outer)
    # only the last finished request is kept, and it holds no token (a token holds the
    # sink before it: requests would chain up, one per request the thread served)
    assert query_sink.get() is outer and outer.finished
    assert first.token is None and outer.token is None


def test_current_request_is_found_through_a_capture_inside_it() -> None:
    from pulsegate.context import current

    gate = PulseGate()
    ctx = gate.begin(RequestInfo("GET", "/c", route="/c"))
    with capture(install_hooks=False) as cap:
        assert query_sink.get() is cap and current() is ctx
    gate.finish(ctx)
    with capture(install_hooks=False):
        assert current() is None


def test_without_query_analysis_a_request_hands_its_sql_to_the_outer_sink() -> None:
    from pulsegate.context import current

    gate = PulseGate(query_analysis=False)
    with capture(install_hooks=False) as cap:
        ctx = gate.begin(RequestInfo("GET", "/c", route="/c"))
        assert ctx is not None and current() is ctx
        loop(2)
        gate.finish(ctx)
    assert cap.query_count == 3 and ctx.query_count == 0
    ctx = gate.begin(RequestInfo("GET", "/c", route="/c"))
    assert ctx is not None
    loop(2)  # no sink outside: the statements are simply not collected
    gate.finish(ctx)
    assert ctx.query_count == 0


def test_hook_faults_are_counted_and_the_query_still_runs() -> None:
    from sqlalchemy import create_engine

    from pulsegate.queries.events import hook_faults
    from pulsegate.sqlalchemy import instrument

    class BrokenSink:
        finished = False

        def add_query(self, event: QueryEvent) -> None:
            raise RuntimeError("sink down")

    gate = PulseGate()
    before = gate.stats()["query_hook_errors"]
    engine = create_engine("sqlite://")
    instrument(engine)
    token = query_sink.set(BrokenSink())
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select ?", (3,)).scalar() == 3  # fail open
    finally:
        query_sink.reset(token)
    assert gate.stats()["query_hook_errors"] == before + 1 == hook_faults.total


def test_query_detections_counts_past_the_recent_buffer() -> None:
    gate = PulseGate(clock=FakeClock(), max_recent=3)
    for _ in range(5):
        request(gate, 6)
    assert len(gate.detections) == 3  # the buffer keeps the newest
    assert gate.stats()["query_detections"] == 5  # the counter counts them all
