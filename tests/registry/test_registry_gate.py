"""Feedback, metrics, tuning, versions and rollback through a real PulseGate."""

import math

from registry_helpers import hit, make_gate, warm

from pulsegate.registry.parts import z_for as _z_for


def anomalies(gate, clk, sizes):
    """One anomaly per latency in ``sizes`` (re-warming in between); their predictions."""
    out = []
    for ms in sizes:
        warm(gate, clk, 40)
        rec = hit(gate, clk, ms)
        pid = gate.ops.predictions.id_of(rec)
        assert pid is not None, f"{ms} ms was not flagged"
        out.append(gate.ops.predictions.get(pid))
    return out


def test_every_anomaly_gets_an_id_and_feedback_feeds_the_metrics() -> None:
    gate, clk = make_gate()
    preds = anomalies(gate, clk, [15.0, 20.0, 16.0])
    assert len({p.id for p in preds}) == 3
    assert all(p.model == "latency-baseline" and p.kind == "request" and p.predicted for p in preds)
    assert all(0.5 < p.score <= 1.0 for p in preds)
    assert preds[1].summary["endpoint"] == "GET /x" and preds[1].summary["duration_ms"] == 20.0
    assert gate.feedback(preds[0].id, True) and gate.feedback(preds[1].id, False)
    assert gate.feedback("nope-1", True) is False
    m = gate.ops.monitor.metrics("latency-baseline")
    assert (m.tp, m.fp, m.precision) == (1, 1, 0.5)
    assert gate.ops.monitor.summary()["latency-baseline"]["last_100"]["n"] == 2
    gate.close()


def test_labels_tune_a_new_version_that_rollback_restores() -> None:
    gate, clk = make_gate(tuning_min_labels=20)
    assert gate.model_version == "1.0.0"
    low = anomalies(gate, clk, [14.5] * 12)   # mild: false alarms
    high = anomalies(gate, clk, [20.0] * 12)  # strong: real
    for p in low:
        gate.feedback(p.id, False)
    for p in high:
        gate.feedback(p.id, True)
    before = gate.ops.monitor.metrics("latency-baseline")
    assert before.precision == 0.5
    [result] = [r for r in gate.ops.tuning_job() if r.model == "latency-baseline"]
    assert result.reason == "applied", result
    t = result.best
    assert max(p.score for p in low) < t <= min(p.score for p in high)
    v = gate.registry.active("latency-baseline")
    assert v.version == "1.1.0" and v.config["threshold"] == t
    k = _z_for(t, 3.0)
    assert all(m.threshold == k for _, m in gate.baselines.items())
    assert gate.model_version == "1.1.0"
    # a mild anomaly is no longer flagged, a new endpoint gets the tuned threshold too
    warm(gate, clk, 40)
    anomalies_before = gate.counters["anomalies"]
    rec = hit(gate, clk, 14.5)
    assert gate.counters["anomalies"] == anomalies_before
    # ... but it is logged as a near miss: a negative prediction that can be labelled
    near = gate.ops.predictions.get(gate.ops.predictions.id_of(rec))
    assert near.predicted is False and near.score < t
    hit(gate, clk, 10.0, path="/new")
    assert gate.baselines.peek("GET /new").threshold == k
    # rollback restores the original threshold everywhere
    gate.registry.rollback("latency-baseline", "1.0.0")
    assert all(m.threshold == 3.0 for _, m in gate.baselines.items())
    assert gate.model_version == "1.0.0"
    assert math.isclose(_z_for(0.5, 3.0), 3.0)
    gate.close()


def test_scheduler_runs_the_jobs_at_their_intervals() -> None:
    gate, clk = make_gate(monitoring_interval=10, degradation_interval=20, tuning_interval=30,
                          cleanup_interval=40)
    jobs = gate.scheduler.jobs
    mine = ("alerts", "monitoring", "degradation", "tuning", "cleanup", "snapshot")
    assert {n: jobs[n].interval for n in jobs if n.split(".")[-1] in mine} == {
        "pulsegate.alerts": 5.0, "pulsegate.monitoring": 10, "pulsegate.degradation": 20,
        "pulsegate.tuning": 30, "pulsegate.cleanup": 40}  # no snapshot without a store
    gate.close()
    off, _ = make_gate(auto_tuning=False)
    assert "pulsegate.tuning" not in off.scheduler.jobs
    off.close()


def test_accuracy_and_degradation_alerts() -> None:
    got = []
    gate, clk = make_gate(alert_callback=got.append, monitor_min_labels=10,
                          accuracy_target=0.8, alert_critical_score=1.0)
    preds = anomalies(gate, clk, [15.0] * 20)
    for p in preds[:10]:
        gate.feedback(p.id, True)
    now = gate.scheduler.clock()
    gate.scheduler.run_pending(now + 301)  # monitoring: records the baseline, no alert
    v = gate.registry.active("latency-baseline")
    assert v.metrics["baseline_accuracy"] == 1.0 and v.metrics["labels"] == 10
    assert [a.kind for a in got] == []
    for p in preds[10:]:
        gate.feedback(p.id, False)
    gate.ops.monitoring_job()
    gate.ops.degradation_job()
    gate.ops.alerts.flush()
    kinds = sorted(a.kind for a in got)
    assert kinds == ["accuracy", "degradation"], kinds
    deg = next(a for a in got if a.kind == "degradation")
    assert deg.fields["drop"] >= 0.05 and deg.subject == "latency-baseline"
    gate.close()


def test_critical_anomaly_alert_is_delivered_off_the_request_path() -> None:
    got = []
    gate, clk = make_gate(alert_callback=got.append, alert_critical_score=0.9)
    warm(gate, clk, 40)
    hit(gate, clk, 200.0)
    assert got == []  # only queued by the request
    gate.scheduler.run_pending(gate.scheduler.clock() + 6)
    assert [a.kind for a in got] == ["critical_anomaly"] and got[0].subject == "GET /x"
    gate.close()


def test_a_single_unusual_request_does_not_page_by_default() -> None:
    """Issue 16: routine GC pauses score >= 0.9 on endpoints that never changed (0.9-35
    critical alerts per endpoint-day, ``benchmarks/incident_streams.py --engine``), so
    single-request alerts are opt-in; the request is still an anomaly on record."""
    got = []
    gate, clk = make_gate(alert_callback=got.append)
    warm(gate, clk, 40)
    hit(gate, clk, 200.0)
    gate.scheduler.run_pending(gate.scheduler.clock() + 6)
    assert got == [] and gate.counters["anomalies"] >= 1
    assert gate.config.registry.alert_critical_score is None
    gate.close()


def test_query_detections_get_ids_and_rank_by_roi() -> None:
    gate, clk = make_gate()
    ops = gate.ops
    det = {"kind": "n_plus_one", "fingerprint": "select * from book where author_id = ?",
           "count": 20, "total_ms": 10.0, "confidence": 0.9, "suggestion": "selectinload(Author.books)",
           "call_site": "app.py:10 in list_authors"}
    small = {**det, "fingerprint": "select * from tag where id = ?", "count": 5,
             "total_ms": 1.0, "confidence": 0.6}
    ids = {ops.observe_detection("GET /authors", det, 1000.0 + i) for i in range(10)}
    assert len(ids) == 1  # one prediction per (endpoint, kind, fingerprint)
    ops.observe_detection("GET /tags", small, 1000.0)
    ranked = ops.ranked_insights()
    assert [r["endpoint"] for r in ranked] == ["GET /authors", "GET /tags"]
    top = ranked[0]
    assert top["improvement"] == 0.95 and top["mean_ms"] == 10.0
    assert top["roi"] == top["confidence"] * top["improvement"] * top["urgency"]
    assert gate.feedback(ids.pop(), False)
    assert ops.monitor.metrics("n1-detector").fp == 1
    gate.close()


def test_throttled_clients_are_predictions_and_the_threshold_drives_the_limiter() -> None:
    from pulsegate.records import RequestInfo

    gate, clk = make_gate(rate_limiting=True, rate_limit="2/minute", rate_limit_burst=2)
    lim = gate.ops.component("rate-limit-behaviour")
    statuses = []
    for _ in range(5):
        ctx = gate.begin(RequestInfo("GET", "/x", "/x", client_ip="10.1.2.3"))
        rejection = gate.admit(ctx)
        status = rejection.status if rejection is not None else 200
        gate.response_headers(ctx, status)
        gate.finish(ctx, status=status)
        statuses.append(status)
    assert statuses.count(429) == 3
    throttles = gate.ops.predictions.recent(model="rate-limit-behaviour")
    assert len(throttles) == 1  # one per client per minute, not one per rejected request
    assert throttles[0].kind == "throttle" and throttles[0].summary["client"] == "ip:10.1.2.3"
    assert gate.feedback(throttles[0].id, True)
    gate.registry.update("rate-limit-behaviour", {"threshold": 0.7})
    assert lim.suspicion_threshold == 0.7
    gate.registry.rollback("rate-limit-behaviour", "1.0.0")
    assert lim.suspicion_threshold == 0.5
    gate.close()


def test_near_misses_are_logged_at_most_once_per_endpoint_per_interval() -> None:
    gate, clk = make_gate()
    gate.registry.update("latency-baseline", {"threshold": 0.8})
    warm(gate, clk, 40)
    before = len(gate.ops.predictions)
    for _ in range(5):
        hit(gate, clk, 12.5)  # |z| ~4.5: score ~0.69, under the tuned 0.8, above 0.5
        warm(gate, clk, 40)
    near = [p for p in gate.ops.predictions.recent(50) if not p.predicted]
    assert len(gate.ops.predictions) - before == len(near) == 1
    gate.test_wall.t += 11  # eleven seconds later, on both clocks
    clk.t += 11
    hit(gate, clk, 12.5)
    assert len([p for p in gate.ops.predictions.recent(50) if not p.predicted]) == 2
    gate.close()


def test_incidents_get_ids_accept_feedback_and_alert() -> None:
    got = []
    gate, clk = make_gate(aggregation_window=1.0, seasonality="off", alert_callback=got.append)
    for _ in range(60):  # a steady minute, window by window
        for i in range(5):
            hit(gate, clk, 10.0 + i % 2)
        clk.t += 1.0
    assert gate.counters["incidents"] == 0
    for _ in range(6):  # a sustained shift
        for _ in range(5):
            hit(gate, clk, 80.0)
        clk.t += 1.0
    assert gate.counters["incidents"] >= 1
    inc = gate.incidents[0]
    p = gate.ops.predictions.get(inc["id"])
    assert p.kind == "incident" and p.model == "latency-baseline"
    assert p.summary["endpoint"] == "GET /x"
    assert gate.feedback(inc["id"], True)
    assert gate.ops.monitor.metrics("latency-baseline").tp == 1
    # incidents do not feed the request-level threshold tuning
    assert gate.ops.monitor.samples("latency-baseline", kinds=("request",)) == []
    gate.ops.alerts.flush()
    assert any(a.kind == "incident" and a.subject == "GET /x" for a in got)
    gate.close()


def test_real_query_detections_get_ids_on_the_gate_rows() -> None:
    from pulsegate.queries.events import QueryEvent
    from pulsegate.records import RequestInfo

    gate, clk = make_gate()
    for _ in range(3):
        ctx = gate.begin(RequestInfo("GET", "/authors", "/authors"))
        ctx.add_query(QueryEvent("SELECT id, name FROM author", 0.2, call_site="app.py:9 in f"))
        for i in range(10):
            ctx.add_query(QueryEvent("SELECT id, title FROM book WHERE author_id = ?", 0.1,
                                     params_count=1, params_hash=i, call_site="app.py:10 in f"))
        gate.response_headers(ctx, 200)
        clk.t += 0.01
        gate.finish(ctx)
    rows = [r for r in gate.detections if r.get("kind") == "n_plus_one"]
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 1  # one id per pattern
    p = gate.ops.predictions.get(rows[0]["id"])
    assert p.model == "n1-detector" and p.summary["endpoint"] == "GET /authors"
    [insight] = gate.ops.ranked_insights()
    assert insight["requests"] == 3 and insight["queries"] == 30
    assert gate.feedback(rows[0]["id"], True)
    gate.close()


def test_n1_detector_threshold_versions_reach_the_live_detector() -> None:
    gate, clk = make_gate()
    detector = gate.queries.detector
    assert detector.min_confidence == 0.0  # the default reports every rule match
    gate.registry.update("n1-detector", {"threshold": 0.85})
    assert detector.min_confidence == 0.85
    gate.registry.rollback("n1-detector", "1.0.0")
    assert detector.min_confidence == 0.0
    gate.close()


def test_retention_forgets_old_anomalies_and_detections() -> None:
    """``retention`` (seconds) bounds what reports and the dashboard keep by age."""
    gate, clk = make_gate(retention=100)
    warm(gate, clk, 40)
    hit(gate, clk, 200.0)
    assert len(gate.recent_anomalies) >= 1
    wall = gate.test_wall  # type: ignore[attr-defined]
    gate.detections.append({"kind": "n_plus_one", "at": wall.t})
    due = gate.scheduler.clock()
    wall.t += 50.0
    clk.t += 50.0
    gate.scheduler.run_pending(due + 11)
    assert gate.recent_anomalies and gate.detections  # younger than retention: kept
    wall.t += 60.0
    clk.t += 60.0
    hit(gate, clk, 400.0)  # a new anomaly, inside the window
    gate.scheduler.run_pending(due + 22)
    assert [r.duration_ms > 300 for r in gate.recent_anomalies] == [True]
    assert not gate.detections
    gate.close()
