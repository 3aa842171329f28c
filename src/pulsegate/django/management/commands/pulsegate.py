"""``python manage.py pulsegate stats|report [--json]``

``stats`` prints the counters; ``report`` the per-endpoint baselines, recent anomalies
and query detections with their fixes.

In a process that serves requests (``call_command`` from a view or a job, a shell that
served some, a test) they read its engine: live data. In a ``manage.py`` process that
served nothing, with persisted state configured (``state_dir`` or ``state_redis_url`` in
``settings.PULSEGATE``), they read that store, as ``pulsegate stats|report --state-dir``
does: the serving processes write it every ``snapshot_interval`` seconds and at shutdown,
so this shows what the running server has seen (every live worker). No engine is built
for that (one would add an empty worker). Without a store, a fresh process says where
its data would come from.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pulsegate.config import PersistenceConfig
from pulsegate.django.gate import built_gate, config_from_settings, get_gate
from pulsegate.engine import PulseGate
from pulsegate.export.paths import exported_path


def _detections(gate: PulseGate) -> list[dict[str, Any]]:
    """Query problems ranked across requests (``gate.query_insights()``), or, before any
    is ranked, the recent per-request detections (``gate.detections``)."""
    ranked = gate.query_insights()
    if ranked:
        return [dict(row) for row in ranked]
    recent = list(gate.detections)  # one C call: request threads append meanwhile
    return [dict(d) for d in recent]


def build_report(gate: PulseGate) -> dict[str, Any]:
    return {
        "stats": gate.stats(),
        "endpoints": gate.endpoints(),
        "anomalies": [
            {"endpoint": r.endpoint, "path": exported_path(gate, r.path), "status": r.status,
             "duration_ms": round(r.duration_ms, 2), "score": round(r.anomaly_score, 3),
             "unusual": r.unusual}
            for r in list(gate.recent_anomalies)],
        "detections": _detections(gate),
    }


class Command(BaseCommand):
    help = "pulsegate statistics and report (per-endpoint baselines, anomalies, N+1 fixes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("what", choices=["stats", "report"])
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        config = config_from_settings().persistence
        live = built_gate()
        serving = live is not None and live.counters.get("requests", 0) > 0
        if (config.state_dir or config.state_redis_url) and not serving:
            self._from_store(config, options["what"], bool(options["json"]))
            return
        gate = get_gate()
        if options["what"] == "stats":
            stats = gate.stats()
            if options["json"]:
                self.stdout.write(json.dumps(stats, sort_keys=True, default=str))
            else:
                for key, value in sorted(stats.items()):
                    self.stdout.write(f"{key:24} {value}")
            return
        report = build_report(gate)
        if options["json"]:
            self.stdout.write(json.dumps(report, sort_keys=True, default=str))
            return
        w = self.stdout.write
        s = report["stats"]
        w(f"requests {s['requests']}  anomalies {s['anomalies']}  errors {s['errors']}  "
          f"model {s['model_version']}")
        if not s["requests"] and not report["endpoints"]:
            w(EMPTY_HINT)
            return
        w("\nEndpoints (most requested first)")
        w(f"  {'endpoint':48} {'requests':>8} {'predicted ms':>12} {'confidence':>10}")
        for row in report["endpoints"]:
            predicted = "-" if row["predicted_ms"] is None else f"{row['predicted_ms']:.1f}"
            w(f"  {row['endpoint']:48} {row['requests']:>8} {predicted:>12} "
              f"{row['confidence']:>10.0f}")
        w("\nRecent anomalies")
        for a in report["anomalies"][-20:]:
            w("  " + "  ".join(f"{k}={v}" for k, v in a.items()))
        if not report["anomalies"]:
            w("  none")
        w("\nQuery detections")
        for d in report["detections"]:
            fix = d.get("suggestion")
            where = d.get("endpoints") or d.get("endpoint") or ""
            if isinstance(where, (list, tuple)):
                where = ", ".join(map(str, where))
            count = d.get("mean_count", d.get("count"))
            site = d.get("call_site")
            w(f"  {d.get('kind')}  {d.get('relationship') or d.get('sql', '')}"
              + (f"  x{_number(count)}" if count is not None else "")
              + (f"  {where}" if where else "") + (f"  at {site}" if site else "")
              + (f"\n    fix: {fix}" if fix else ""))
        if not report["detections"]:
            w("  none")


    def _from_store(self, config: PersistenceConfig, what: str, as_json: bool) -> None:
        """The standalone CLI's view of the store the serving processes write."""
        from pulsegate import cli

        argv = [what, "--ttl", str(config.state_ttl)]
        if config.state_redis_url:
            argv += ["--redis-url", config.state_redis_url, "--namespace", config.state_namespace]
        else:
            argv += ["--state-dir", str(config.state_dir)]
        if as_json:
            argv.append("--json")
        out: Any = getattr(self.stdout, "_out", self.stdout)  # print() ends its own lines
        err: Any = getattr(self.stderr, "_out", self.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        if code:
            raise CommandError(f"pulsegate {what}: could not read the state store "
                               f"({config.state_redis_url or config.state_dir})")


#: Printed instead of empty sections: where the report's data comes from.
EMPTY_HINT = (
    "\nNothing recorded yet. This command reads the engine of this process: a fresh "
    "`manage.py` process has seen no requests, and starts from persisted state only when "
    "settings.PULSEGATE has \"state_dir\" (or \"state_redis_url\"), which the serving "
    "processes write every snapshot_interval seconds and at shutdown. Set it, serve some "
    "requests, then run this again (or `pulsegate report --state-dir DIR`).")


def _number(value: Any) -> str:
    """A count as an integer, a mean with one decimal when it has one."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.1f}"
    return str(value)
