"""``pulsegate report``'s jobs table, read from the state a running app (or worker)
persisted: the ``jobs`` component :mod:`pulsegate.jobs` registers (each job name's start
rate, last queue wait, outcomes, retries, whether it is starving), written with each
snapshot. The jobs' models themselves (``JOB <name>``, ``QUEUE <name>``) are rows of the
endpoint baselines table."""

from __future__ import annotations

from typing import Any

from pulsegate.cli_output import table

__all__ = ["jobs_report", "print_jobs"]


def jobs_report(store: Any, limit: int) -> dict[str, Any]:
    """``{"jobs": [row, ...]}``: one row per job name, most runs first."""
    try:
        row = store.read("components").get("jobs")
    except Exception:
        return {"jobs": []}
    state = row.get("state") if isinstance(row, dict) else None
    rows: list[dict[str, Any]] = []
    for name, rate in (state.items() if isinstance(state, dict) else ()):
        if not isinstance(rate, dict):
            continue
        found = rate.get("outcomes")
        outcomes: dict[str, Any] = found if isinstance(found, dict) else {}
        mean, wait = rate.get("mean") or 0.0, rate.get("last_wait_ms")
        rows.append({"job": str(name), "runs": sum(int(v) for v in outcomes.values()),
                     "failures": int(outcomes.get("failure", 0)) + int(outcomes.get("timeout", 0)),
                     "retries": int(rate.get("retries") or 0),
                     "mean_interval_s": round(float(mean), 3) if rate.get("intervals") else None,
                     "last_wait_ms": wait,
                     "backlog_estimate": round(float(wait) / 1000.0 / float(mean), 1)
                     if wait is not None and mean else None,
                     "starving": bool(rate.get("starving"))})
    rows.sort(key=lambda r: -float(r["runs"] or 0))
    return {"jobs": rows[:limit]}


def print_jobs(report: dict[str, Any]) -> None:
    rows = report.get("jobs") or []
    if rows:
        table("jobs (each run is a row JOB <name> of the baselines, its wait QUEUE <name>)",
              ["job", "runs", "failures", "retries", "every s", "last wait ms", "backlog",
               "starving"],
              [(r["job"], r["runs"], r["failures"], r["retries"], r["mean_interval_s"],
                r["last_wait_ms"], r["backlog_estimate"], "yes" if r["starving"] else "")
               for r in rows])
