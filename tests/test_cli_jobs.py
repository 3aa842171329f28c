"""``pulsegate report`` shows the jobs a worker persisted: their models as baseline rows
(``JOB <name>``, ``QUEUE <name>``) and the jobs table (runs, failures, retries, rate,
last wait, backlog estimate, starving)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pulsegate import cli
from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    gate = PulseGate(state_dir=str(tmp_path), log_events=False)
    for _ in range(4):
        with observe_job("mail.send", gate=gate, queue_wait_ms=800.0):
            pass
    with observe_job("mail.send", gate=gate, retries=1) as scope:
        scope.outcome = "retry"
    with pytest.raises(OSError), observe_job("reports.nightly", gate=gate):
        raise OSError("disk full")
    gate.close()  # the final snapshot
    return tmp_path


def test_report_json_lists_jobs_and_their_models(state: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--state-dir", str(state), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"JOB mail.send", "QUEUE mail.send", "JOB reports.nightly"} <= {
        r["endpoint"] for r in out["endpoints"]}
    jobs = {r["job"]: r for r in out["jobs"]}
    assert (jobs["mail.send"]["runs"], jobs["mail.send"]["retries"]) == (5, 1)
    assert jobs["mail.send"]["last_wait_ms"] == 800.0
    assert jobs["reports.nightly"]["failures"] == 1


def test_report_prints_the_jobs_table(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--state-dir", str(state)]) == 0
    text = capsys.readouterr().out
    assert "jobs (each run is a row JOB <name>" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("mail.send"))
    assert line.split()[:4] == ["mail.send", "5", "0", "1"]
