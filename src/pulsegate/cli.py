"""The ``pulsegate`` command: read (and steer) the state a running app persisted.

    pulsegate demo [ARGS...]                      run the demo app (pulsegate.demo)
    pulsegate stats                               counters summed over live workers
    pulsegate report [--limit N]                  baselines, incidents, anomalies, query insights, jobs
    pulsegate models list | show NAME | history NAME | rollback NAME VERSION
    pulsegate feedback [ID correct|incorrect]     label a prediction / show accuracy, F1

The state comes from ``--state-dir`` (the app's SQLite file; env ``PULSEGATE_STATE_DIR``)
or ``--redis-url`` (env ``PULSEGATE_STATE_REDIS_URL``). Labels and rollbacks written here
reach the running app at its next monitoring run / snapshot. The app writes that state
only when it is configured with ``state_dir`` (or ``state_redis_url``): every
``snapshot_interval`` seconds and when it shuts down. Tables use ``rich`` on a terminal
(the ``cli`` extra), else plain aligned text never wrapped; ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulsegate.advisor.show import print_advice
from pulsegate.cli_io import io_report, print_io
from pulsegate.cli_jobs import jobs_report, print_jobs
from pulsegate.cli_output import STATE_HINT, ago, fmt, print_findings, table
from pulsegate.incidents import Incident
from pulsegate.queries.ranking import ranked_findings
from pulsegate.registry import snapshot as snap
from pulsegate.registry.feedback import Prediction, metrics_of
from pulsegate.registry.models import ModelRegistry, UnknownModel
from pulsegate.registry.persist import label_row
from pulsegate.registry.store import DB_NAME, RedisStore, SQLiteStore, StateStore


class CLIError(Exception):
    pass


# --- state ---------------------------------------------------------------------------------


def open_state(args: argparse.Namespace) -> StateStore:
    redis_url = args.redis_url or os.environ.get("PULSEGATE_STATE_REDIS_URL")
    if redis_url:
        return RedisStore(redis_url, args.namespace)
    state_dir = args.state_dir or os.environ.get("PULSEGATE_STATE_DIR")
    if not state_dir:
        raise CLIError("no state to read: pass --state-dir DIR (the app's state_dir) or "
                       f"--redis-url URL.\n{STATE_HINT}")
    path = Path(state_dir)
    db = path / DB_NAME if path.is_dir() or path.suffix == "" else path
    if not db.exists():
        raise CLIError(f"no persisted state at {db} yet.\n{STATE_HINT}")
    return SQLiteStore(db)


def load_registry(store: StateStore) -> ModelRegistry:
    reg = ModelRegistry()
    reg.merge(store.read("models"))
    reg.dirty.clear()
    return reg


def endpoint_rows(store: StateStore, now: float, ttl: float) -> list[dict[str, Any]]:
    """Fleet baseline per endpoint: forecast, interval, confidence (as the app computes
    them: ``e^f``, ``e^{f±kσ}``, ``100·min(1, n/warmup)·e^{-σ}``)."""
    from pulsegate.learn.endpoint import FLOORS

    reg = load_registry(store)
    k, warmup = 3.0, 30
    if "latency-baseline" in reg:
        cfg = reg.active("latency-baseline").config
        k0, t = float(cfg.get("z_threshold", 3.0)), float(cfg.get("threshold", 0.5))
        k = k0 * math.sqrt(min(t, 0.999999) / (1 - min(t, 0.999999)))
        warmup = int(cfg.get("warmup", 30))
    workers = snap.live_workers(store, now, ttl)
    rows: list[dict[str, Any]] = []
    for key, st in snap.fleet_endpoints(store, workers).items():
        try:
            level, var, n = float(st["level"][0]), float(st["var"][0]), int(st["n"])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        sigma = max(math.sqrt(max(var, 0.0)), FLOORS["latency"])
        rows.append({"endpoint": key, "requests": n, "predicted_ms": math.exp(level),
                     "low_ms": math.exp(level - k * sigma), "high_ms": math.exp(level + k * sigma),
                     "confidence": 100.0 * min(1.0, n / max(1, warmup)) * math.exp(-sigma)})
    rows.sort(key=lambda r: -r["requests"])
    return rows


def predictions(store: StateStore) -> list[Prediction]:
    out = []
    for d in store.read("predictions").values():
        try:
            out.append(Prediction.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue
    out.sort(key=lambda p: -p.at)
    return out


def performance(store: StateStore) -> dict[str, dict[str, Any]]:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in store.read("labels").values():
        if isinstance(row, dict) and row.get("actual") is not None:
            by_model.setdefault(str(row.get("model")), []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for model, rows in sorted(by_model.items()):
        rows.sort(key=lambda r: float(r.get("labelled_at") or 0))
        pairs = [(bool(r["predicted"]), bool(r["actual"])) for r in rows]
        out[model] = {"last_100": metrics_of(pairs[-100:]).as_dict(),
                      "last_1000": metrics_of(pairs[-1000:]).as_dict(),
                      "all_time": metrics_of(pairs).as_dict()}
    return out


# --- commands ------------------------------------------------------------------------------


def cmd_stats(store: StateStore, args: argparse.Namespace) -> Any:
    now = time.time()
    workers = snap.live_workers(store, now, args.ttl)
    total = snap.sum_stats(workers)
    out: dict[str, Any] = {"store": store.location, "workers": len(workers), "totals": total,
           "per_worker": [{"worker": w, "pid": r.get("pid"), "host": r.get("host"),
                           "requests": (r.get("stats") or {}).get("requests"),
                           "updated": r.get("updated")} for w, r in sorted(workers.items())]}
    if args.json:
        return out
    _note_if_empty(workers, store, args)
    table(f"pulsegate stats ({store.location}, {len(workers)} live worker(s))",
          ["counter", "value"], sorted(total.items()))
    table("workers", ["worker", "pid", "requests", "last snapshot"],
          [(r["worker"], r["pid"], r["requests"], ago(r["updated"], now))
           for r in out["per_worker"]])
    return None


def cmd_report(store: StateStore, args: argparse.Namespace) -> Any:
    now = time.time()
    eps = endpoint_rows(store, now, args.ttl)[: args.limit]
    flagged = [p.to_dict() for p in predictions(store)
               if p.model == "latency-baseline" and p.predicted]
    # one request unusual for its endpoint (x-ml-anomaly-score) vs the endpoint changed
    anomalies = [a for a in flagged if a["kind"] != "incident"][: args.limit]
    incidents = [{"id": a["id"], "label": a["correct"], **Incident.from_dict(a["summary"]).to_dict()}
                 for a in flagged if a["kind"] == "incident"][: args.limit]
    workers = snap.live_workers(store, now, args.ttl)
    # the query advisor's findings rank with the N+1 insights (ms saved per minute)
    row = store.read("components").get("advisor") or {}
    advice = (row.get("state") or {}).get("report") or {} if isinstance(row, dict) else {}
    insights = ranked_findings(snap.fleet_insights(store, workers),
                               advice.get("findings") or [], now, args.limit)
    io = {**io_report(store, args.limit), **jobs_report(store, args.limit)}
    healing = _healing_switches(store)[: args.limit]
    if args.json:
        return {"endpoints": eps, "anomalies": anomalies, "incidents": incidents,
                "query_insights": insights, "advice": advice, "healing": healing, **io}
    _note_if_empty(workers, store, args)
    table("endpoint baselines (fleet)", ["endpoint", "requests", "forecast ms", "interval ms",
                                         "confidence"],
          [(r["endpoint"], r["requests"], r["predicted_ms"],
            f"{r['low_ms']:.1f}-{r['high_ms']:.1f}", f"{r['confidence']:.0f}") for r in eps])
    table("recent incidents (an endpoint changed: its windows kept sitting above its baseline)",
          ["id", "endpoint", "what", "since", "window ms", "expected ms", "ratio",
           "requests/windows", "score", "label"],
          [(i["id"], i["endpoint"], _what(i), ago(i["start"], now), i["window_mean_ms"],
            i["expected_ms"],
            f"{i['ratio']:.1f}x", f"{i['requests']}/{i['windows']}", i["score"],
            _label(i["label"])) for i in incidents])
    table("recent anomalous requests (one request unusual for its endpoint: "
          "x-ml-anomaly-score)", ["id", "kind", "endpoint", "what rose", "ms", "expected ms",
                                  "score", "when", "label"],
          [(a["id"], a["kind"], a["summary"].get("endpoint"), a["summary"].get("unusual") or "-",
            a["summary"].get("duration_ms"),
            a["summary"].get("predicted_ms"), a["score"], ago(a["at"], now),
            _label(a["correct"])) for a in anomalies])
    print_findings(insights)
    if advice:
        print_advice(advice)
    if healing:
        table("healing actions (switched on by an incident, off when healing_seconds ran out)",
              ["when", "state", "what", "after an incident on", "score"],
              [(ago(h.get("at") or now, now), h.get("state"), h.get("what"), h.get("incident"),
                h.get("score")) for h in healing])
    print_io(io)
    print_jobs(io)
    return None


def _healing_switches(store: StateStore) -> list[dict[str, Any]]:
    """The healing actions' switches the healer persisted, newest first."""
    row = store.read("components").get("healing") or {}
    state = row.get("state") if isinstance(row, dict) else None
    rows = state.get("history") if isinstance(state, dict) else None
    return [r for r in reversed(rows) if isinstance(r, dict)] if isinstance(rows, list) else []


def _note_if_empty(workers: dict[str, Any], store: StateStore, args: argparse.Namespace) -> None:
    if not workers:
        print(f"(no worker has written a snapshot to {store.location} in the last "
              f"{fmt(args.ttl)} s: the tables below are empty)\n{STATE_HINT}")


def _what(incident: dict[str, Any]) -> str:
    """The metric that made an incident unusual and its direction: "latency above"."""
    return f"{incident.get('metric') or 'latency'} {incident.get('direction') or 'above'}"


def _label(correct: Any) -> str:
    return "-" if correct is None else ("correct" if correct else "wrong")


def cmd_models(store: StateStore, args: argparse.Namespace) -> Any:
    reg = load_registry(store)
    action = args.action
    if action == "list":
        rows = reg.summaries()
        if args.json:
            return rows
        table("models", ["name", "version", "deployed", "versions", "config", "metrics"],
              [(r["name"], r["version"], ago(r["deployed_at"], time.time()), r["versions"],
                r["config"], {k: v for k, v in r["metrics"].items()
                              if k in ("accuracy", "f1", "labels")}) for r in rows])
        return None
    if not args.name:
        raise CLIError(f"models {action} needs a model name (see `pulsegate models list`)")
    try:
        if action == "show":
            v = reg.get(args.name, args.version)
            if args.json:
                return v.to_dict()
            table(f"{v.name} {v.version}", ["field", "value"],
                  [(k, x) for k, x in v.to_dict().items()])
            return None
        if action == "history":
            hist = reg.history(args.name)
            active = reg.active(args.name).version
            if args.json:
                return [{**v.to_dict(), "active": v.version == active} for v in hist]
            table(f"{args.name} history", ["version", "active", "created", "deployed", "config",
                                           "note"],
                  [(v.version, v.version == active, ago(v.created_at, time.time()),
                    ago(v.deployed_at, time.time()), v.config, v.note) for v in hist])
            return None
        if action == "rollback":
            if not args.version:
                raise CLIError("models rollback needs NAME VERSION")
            v = reg.rollback(args.name, args.version)
            store.write([("models", k, row) for k, row in reg.rows(only_dirty=True).items()])
            msg = (f"{v.name} rolled back to {v.version} (config {fmt(v.config)}); running "
                   f"apps apply it at their next snapshot")
            if args.json:
                return {"name": v.name, "version": v.version, "config": v.config}
            print(msg)
            return None
    except UnknownModel as exc:
        raise CLIError(f"unknown model or version: {exc.args[0]}") from None
    raise CLIError(f"unknown action {action}")


def cmd_feedback(store: StateStore, args: argparse.Namespace) -> Any:
    if args.id:
        if args.verdict is None:
            raise CLIError("feedback ID needs a verdict: correct or incorrect")
        row = store.read("predictions").get(args.id)
        if row is None:
            raise CLIError(f"unknown prediction id {args.id!r} (see `pulsegate report`)")
        p = Prediction.from_dict(row)
        p.correct, p.labelled_at = args.verdict == "correct", time.time()
        store.write([("predictions", p.id, p.to_dict()), ("labels", p.id, label_row(p))])
        if args.json:
            return p.to_dict()
        print(f"{p.id} ({p.model}, {p.kind}) labelled {args.verdict}")
        return None
    perf = performance(store)
    pending = [p for p in predictions(store) if p.correct is None][: args.limit]
    if args.json:
        return {"performance": perf, "unlabelled": [p.to_dict() for p in pending]}
    rows = []
    for model, windows in perf.items():
        for w, m in windows.items():
            rows.append((model, w, m["n"], m["accuracy"], m["precision"], m["recall"], m["f1"]))
    table("model performance from feedback", ["model", "window", "labels", "accuracy",
                                              "precision", "recall", "F1"], rows)
    table("unlabelled predictions (pulsegate feedback ID correct|incorrect)",
          ["id", "model", "kind", "score", "endpoint"],
          [(p.id, p.model, p.kind, p.score, p.summary.get("endpoint")) for p in pending])
    return None


#: What ``pulsegate demo`` imports, and the extra that installs it.
DEMO_NEEDS = ("fastapi", "sqlalchemy", "uvicorn", "httpx")


def cmd_demo(argv: list[str]) -> int:
    import importlib.util

    missing = [m for m in DEMO_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        print(f"pulsegate demo needs {', '.join(missing)}, which are not installed: "
              "pip install \"pulsegate[demo]\" (from a clone: pip install -e \".[demo]\", "
              "or python3 dev.py demo)", file=sys.stderr)
        return 2
    from pulsegate import demo

    result = demo.main(argv)
    return int(result) if isinstance(result, int) else 0


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=argparse.SUPPRESS,
                        help="the app's state_dir (SQLite); env PULSEGATE_STATE_DIR")
    common.add_argument("--redis-url", default=argparse.SUPPRESS,
                        help="Redis URL of shared state; env PULSEGATE_STATE_REDIS_URL")
    common.add_argument("--namespace", default=argparse.SUPPRESS, help="Redis key prefix")
    common.add_argument("--ttl", type=float, default=argparse.SUPPRESS,
                        help="seconds a silent worker still counts (default 86400)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON instead of tables")
    p = argparse.ArgumentParser(prog="pulsegate", parents=[common],
                                description="Inspect and steer pulsegate's persisted state.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the demo app", add_help=False)
    sub.add_parser("stats", parents=[common], help="counters over live workers")
    r = sub.add_parser("report", parents=[common], help="baselines, anomalies, query insights")
    r.add_argument("--limit", type=int, default=20)
    m = sub.add_parser("models", parents=[common], help="model registry")
    m.add_argument("action", choices=["list", "show", "history", "rollback"])
    m.add_argument("name", nargs="?")
    m.add_argument("version", nargs="?")
    f = sub.add_parser("feedback", parents=[common], help="label predictions, show F1")
    f.add_argument("id", nargs="?")
    f.add_argument("verdict", nargs="?", choices=["correct", "incorrect"])
    f.add_argument("--limit", type=int, default=20)
    return p


COMMANDS = {"stats": cmd_stats, "report": cmd_report, "models": cmd_models,
            "feedback": cmd_feedback}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`pulsegate report | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        return cmd_demo(argv[1:])
    args = build_parser().parse_args(argv)
    for name, default in (("state_dir", None), ("redis_url", None), ("namespace", "pulsegate"),
                          ("ttl", 86400.0), ("json", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        store = open_state(args)
    except CLIError as exc:
        print(f"pulsegate: {exc}", file=sys.stderr)
        return 2
    try:
        result = COMMANDS[args.command](store, args)
    except CLIError as exc:
        print(f"pulsegate: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
