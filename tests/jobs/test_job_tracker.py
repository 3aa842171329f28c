"""The job tracker: start rate, starvation (each episode once, ended by the next start),
backlog estimate, persisted state; starvation flagged on the gate as an incident."""

from __future__ import annotations

import random
from typing import Any

import pytest
from jobs_learnt import learnt

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.jobs.runs import check_starvation, end, start, tracker_of
from pulsegate.jobs.tracker import MIN_INTERVALS, JobTracker


def test_a_periodic_job_starves_after_one_missed_run_and_only_once() -> None:
    t = JobTracker()
    for i in range(MIN_INTERVALS + 1):
        t.started("hourly", 3600.0 * i)
    last = 3600.0 * MIN_INTERVALS
    assert t.starving(last + 3600.0 * 1.9) == []
    assert t.starving(last + 3600.0 * 2.1) == ["hourly"]
    assert t.starving(last + 3600.0 * 5) == []  # the same episode
    t.started("hourly", last + 3600.0 * 6)
    assert not t.stats()["names"]["hourly"]["starving"]


def test_random_starts_need_a_long_silence_and_few_false_alarms() -> None:
    rng = random.Random(7)
    t = JobTracker()
    now = 0.0
    false_alarms = 0
    for _ in range(5000):  # Poisson starts, one a minute on average
        gap = rng.expovariate(1 / 60.0)
        for check in range(1, int(gap // 30) + 1):  # the 30 s checks during the gap
            false_alarms += len(t.starving(now + 30.0 * check))
        now += gap
        t.started("events", now)
    assert false_alarms <= 5  # e^-8.4 of 5000 intervals: about 1 expected
    assert t.starving(now + 60.0 * 3) == []
    assert t.starving(now + 60.0 * 12) == ["events"]


def test_a_fan_out_burst_is_one_start_for_starvation() -> None:
    """3 000 runs started in one second learnt a rhythm of 0.3 ms, and the silence after
    them was starvation at the next check (hsec5): "no run for 30 s, one expected every
    0 s". A burst is one start; the hour between bursts is the rhythm."""
    t = JobTracker()
    for i in range(3000):  # a one-off fan-out
        t.started("fanout", 100.0 + i / 3000)
    assert t.starving(130.0) == [] and t.starving(100.0 + 86400.0) == []
    hourly = JobTracker()
    for hour in range(MIN_INTERVALS + 2):  # an hourly fan-out of 500 runs in 0.5 s
        for i in range(500):
            hourly.started("fanout", 3600.0 * hour + i / 1000)
            assert hourly.starving(3600.0 * hour + i / 1000 + 30.0) == []
    last = 3600.0 * (MIN_INTERVALS + 1) + 0.5
    assert hourly.starving(last + 3600.0 * 1.5) == []
    assert hourly.starving(last + 3600.0 * 2.5) == ["fanout"]  # one fan-out missed
    assert hourly.verdict("fanout", last + 3600.0 * 2.5)["expected_ms"] == pytest.approx(
        3.6e6, rel=0.01)


def test_no_starvation_before_the_rate_is_known() -> None:
    t = JobTracker()
    for i in range(MIN_INTERVALS - 1):
        t.started("young", 10.0 * i)
    assert t.starving(1e9) == []


def test_backlog_estimate_is_the_start_rate_times_the_wait() -> None:
    t = JobTracker()
    for i in range(20):
        t.started("mail", 2.0 * i, wait_ms=30_000.0)  # one start every 2 s, 30 s of wait
    assert t.backlog_estimate("mail") == pytest.approx(15.0)
    assert t.backlog_estimate("never") is None


def test_state_survives_a_restart_and_bad_rows_are_skipped() -> None:
    t = JobTracker()
    for i in range(12):
        t.started("nightly", 86400.0 * i)
    again = JobTracker()
    t.finished("nightly", "retry")
    again.load_state({**t.state(), "bad": {"mean": "x"}, "old": [1.0, 0.0, 3, None],
                      "neg": {"mean": -1.0, "dev": 0.0, "intervals": 3}})
    assert list(again.rates) == ["nightly"]
    assert again.starving(86400.0 * 11 + 86400.0 * 2.5) == ["nightly"]
    assert again.stats()["names"]["nightly"]["outcomes"] == {"retry": 1}


def test_the_gate_flags_starvation_as_an_incident_of_the_job() -> None:
    clock = FakeClock(0.0)
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t)
    for _ in range(MIN_INTERVALS + 2):
        run = start(gate, "hourly")
        assert run is not None
        end(gate, run)
        learnt(gate)
        clock.t += 3600.0
    assert check_starvation(gate, tracker_of(gate)) == []
    clock.t += 3600.0 * 2
    flagged = check_starvation(gate, tracker_of(gate))
    assert [i["endpoint"] for i in flagged] == ["JOB hourly"]
    incident = gate.incidents()[-1]
    assert incident.metric == "starvation" and incident.ratio == pytest.approx(3.0)
    assert incident.expected_ms == pytest.approx(3.6e6) and 0.5 < incident.score <= 1.0
    assert gate.stats()["jobs"]["starvations"] == 1
    assert "pulsegate.jobs.starvation" in gate.scheduler.jobs
    gate.close()


def test_a_starved_job_pages_like_an_endpoint_incident() -> None:
    clock = FakeClock(0.0)
    alerts: list[Any] = []
    gate = PulseGate(clock=clock, wall=lambda: 1.7e9 + clock.t, alert_callback=alerts.append)
    for _ in range(MIN_INTERVALS + 2):
        run = start(gate, "nightly")
        assert run is not None
        end(gate, run)
        learnt(gate)
        clock.t += 86400.0
    clock.t += 86400.0 * 2
    check_starvation(gate, tracker_of(gate))
    gate.scheduler.run_all()  # alert delivery runs on the scheduler thread
    paged = [a for a in alerts if a.kind == "incident"]
    assert [a.subject for a in paged] == ["JOB nightly"]
    assert "starvation" in paged[0].message
    gate.close()
