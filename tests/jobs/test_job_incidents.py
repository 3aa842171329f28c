"""The endpoint models' incident detection, applied to jobs through ``observe_job``:
a queue that backs up is an incident of ``QUEUE <name>``, a job whose retries or
failures rise an error-rate incident of ``JOB <name>``, a job that slows down a latency
incident -- each named after the job, with the time it took to be flagged."""

from __future__ import annotations

import random

from jobs_learnt import learnt

from fakeclock import FakeClock
from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job


def make_gate(clock: FakeClock, window: float = 10.0) -> PulseGate:
    return PulseGate(clock=clock, cpu_clock=clock, wall=lambda: 1.7e9 + clock.t,
                     aggregation_window=window, log_events=False)


def incident_on(gate: PulseGate, key: str) -> list[object]:
    """The incidents of ``key`` once every run that ended is learnt (a job learnt in
    the background: the drain the scheduler would have run by then)."""
    return [i for i in learnt(gate).incidents() if i.endpoint == key]


def test_a_backlog_that_builds_up_is_an_incident_of_the_jobs_queue() -> None:
    """One worker, 200 ms a job, Poisson arrivals: 4 a second (busy 80 %, whose waits
    swing from none to seconds) for an hour, then 6 a second -- more than it can serve,
    so the queue grows. Default 60 s windows (10 s ones alarm on the 80 % queue's own
    swings right after the 100 s warm-up: docs/dev-notes/issue-21-jobs.md)."""
    rng = random.Random(3)
    clock = FakeClock(0.0)
    gate = make_gate(clock, window=60.0)
    arrival = free_at = 0.0
    flagged_at = None
    change = 3600.0
    while arrival < change + 900.0 and flagged_at is None:
        arrival += rng.expovariate(4.0 if arrival < change else 6.0)
        start = max(arrival, free_at)
        clock.t = start
        with observe_job("mail.send", gate=gate, queue_wait_ms=(start - arrival) * 1000.0):
            clock.t = free_at = start + 0.2
        if incident_on(gate, "QUEUE mail.send"):
            flagged_at = clock.t
    assert flagged_at is not None and flagged_at > change, "a backlog was never flagged"
    assert flagged_at - change < 180.0  # within 3 minutes of the overload
    assert not incident_on(gate, "JOB mail.send")  # the job itself did not change


def test_rising_retries_are_an_error_rate_incident_of_the_job() -> None:
    rng = random.Random(5)
    clock = FakeClock(0.0)
    gate = make_gate(clock)
    for i in range(3000):  # 2 % retried for 25 minutes, then 40 %
        clock.t += 0.5
        share = 0.02 if i < 3000 * 0.5 else 0.4
        with observe_job("charge", gate=gate) as scope:
            clock.t += 0.05 * (1 + rng.random())
            if rng.random() < share:
                scope.outcome = "retry"
        learnt(gate)  # (each job's end, as the scheduler's drain learns it)
    found = incident_on(gate, "JOB charge")
    assert found and found[0].metric == "error rate"  # type: ignore[attr-defined]
    assert found[0].start >= 1.7e9 + 1500 * 0.55  # type: ignore[attr-defined]


def test_a_job_that_slows_down_is_a_latency_incident_and_its_queue_is_not() -> None:
    rng = random.Random(11)
    clock = FakeClock(0.0)
    gate = make_gate(clock)
    for i in range(2400):
        clock.t += 1.0
        slow = 3.0 if i >= 1800 else 1.0
        with observe_job("thumbs", gate=gate, queue_wait_ms=5.0 + rng.random()):
            clock.t += 0.04 * slow * (1 + 0.2 * rng.random())
        learnt(gate)
    found = incident_on(gate, "JOB thumbs")
    assert found and found[0].metric.startswith("latency")  # type: ignore[attr-defined]
    assert found[0].start >= 1.7e9 + 1800  # type: ignore[attr-defined]
    assert not incident_on(gate, "QUEUE thumbs")
