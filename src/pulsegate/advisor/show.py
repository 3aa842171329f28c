"""How ``pulsegate report`` shows the advisor's persisted report: workload patterns with
an hour x weekday heat map, capacity advice. Its query findings are ranked with the N+1
insights by :func:`pulsegate.queries.ranking.ranked_findings` (one ROI scale: ms of
database time saved per minute x confidence)."""

from __future__ import annotations

from typing import Any

from pulsegate.advisor.patterns import DAYS
from pulsegate.cli_output import table

__all__ = ["heatmap_text", "print_advice", "summary_lines"]

_SHADES = " .:-=+*#%@"


def heatmap_text(grid: list[list[float | None]]) -> list[str]:
    """Seven lines (Monday first), one character per hour, darker = busier."""
    values = [v for row in grid for v in row if v is not None]
    top = max(values, default=0.0)
    lines = ["     " + "".join(str(h // 10) if h % 6 == 0 else " " for h in range(24)),
             "     " + "".join(str(h % 10) if h % 6 == 0 else " " for h in range(24))]
    for day, row in zip(DAYS, grid, strict=True):
        cells = "".join(" " if v is None else
                        _SHADES[min(len(_SHADES) - 1, int(v / top * (len(_SHADES) - 1) + 0.5))]
                        if top > 0 else "." for v in row)
        lines.append(f"{day}  {cells}|")
    return lines


def _cycle(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    return f"{'yes' if c.get('present') else 'no'} (R2 {c.get('r2')})"


def print_advice(report: dict[str, Any]) -> None:
    patterns = report.get("patterns") or {}
    total = patterns.get("total") or {}
    rows = []
    for key, s in [("(all traffic)", total), *sorted((patterns.get("endpoints") or {}).items())]:
        if not s:
            continue
        rows.append((key, s.get("days_observed"),
                     ", ".join(f"{p['hour']:02d}h ({p['confidence']:.0%})"
                               for p in s.get("peaks", [])) or "-",
                     _cycle(s.get("daily_cycle")), _cycle(s.get("weekly_cycle")),
                     ", ".join(f"{b['start_hour']:02d}-{b['end_hour']:02d}h x{b['times_median']}"
                               for b in s.get("batch_windows", [])) or "-"))
    table("workload patterns (peak hours: mean + 1 sigma, with confidence)",
          ["endpoint", "days", "peak hours", "daily cycle", "weekly cycle", "batch windows"],
          rows)
    if total.get("heatmap"):
        print("\nrequests by hour (UTC) x weekday, all traffic")
        for line in heatmap_text(total["heatmap"]):
            print(line)
    cap = report.get("capacity")
    if cap:
        table("capacity advice (M/G/c, Erlang C with Allen-Cunneen; docs/advisor.md)",
              ["workers", "replicas", "peak rps", "mean service ms", "service cv2",
               "target ms", "quantile", "utilisation", "limit per replica", "note"],
              [(cap.get("workers"), cap.get("replicas"), cap.get("peak_rps"),
                cap.get("mean_service_ms"), cap.get("service_cv2"), cap.get("target_ms"),
                cap.get("quantile"), cap.get("utilisation"), cap.get("limit_per_replica"),
                cap.get("note"))])


def summary_lines(report: dict[str, Any], limit: int = 3) -> list[str]:
    """A few lines: the top query findings with their fix, and the capacity advice."""
    lines = []
    for f in (report.get("findings") or [])[:limit]:
        lines.append(f"{f['kind']} on {', '.join(f['endpoints'])}: {f['evidence']}")
        lines.append(f"    fix: {f['fix']}")
    cap = report.get("capacity")
    if cap:
        if cap.get("workers") is None:
            lines.append(f"capacity: {cap['target_ms']:.0f} ms for {cap['quantile']:.0%} of "
                         f"requests: {cap['note']}")
        else:
            lines.append(f"capacity: {cap['workers']} workers meet {cap['target_ms']:.0f} ms "
                         f"for {cap['quantile']:.0%} of requests at the observed peak of "
                         f"{cap['peak_rps']:.0f} requests/s ({cap['note']})")
    return lines
