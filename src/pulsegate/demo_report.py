"""What the demo saw and how it prints it: the engine listener that keeps each
endpoint's observed latencies and statuses (:class:`Observed`), the clients' own counts
(:class:`Tally`), and the report's tables and lines (:mod:`pulsegate.demo` runs it)."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from pulsegate.demo_healing import switched_on_at
from pulsegate.engine import PulseGate
from pulsegate.queries.ranking import ranked_findings
from pulsegate.records import RequestRecord

#: What the report's words mean, printed under the table.
LEGEND = (
    "outlier requests: single requests far slower than their endpoint's forecast (high "
    "x-ml-anomaly-score: a GC pause, a cold cache); not a change of the endpoint",
    "incidents: the endpoint itself changed: its 1 s windows kept sitting above its learnt "
    "baseline, judged on the evidence of many requests",
    "UNMATCHED: requests no route matched (the 404s to /nowhere/...), pooled as one endpoint",
    "p50/p95 (run): over the whole run; forecast (now): the model's expectation at the end",
)


class Observed:
    """Per-endpoint observed (start wall time, latency ms) and counts, fed by an engine
    listener."""

    def __init__(self) -> None:
        self.latency: dict[str, deque[tuple[float, float]]] = defaultdict(
            lambda: deque(maxlen=20000))
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.anomalies: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, record: RequestRecord, ctx: Any) -> None:
        with self.lock:
            key = record.endpoint
            self.latency[key].append((record.started_at, record.duration_ms))
            self.statuses[key][record.status] += 1


class Tally:
    """Client-side counts: what each kind of client got back."""

    def __init__(self) -> None:
        self.by_client: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, client: str, status: int) -> None:
        self.by_client[client][status] += 1

    def count(self, client: str, status: int | None = None) -> int:
        codes = self.by_client.get(client, {})
        return sum(codes.values()) if status is None else codes.get(status, 0)


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(gate: PulseGate, observed: Observed) -> list[dict[str, Any]]:
    """One row per endpoint, most requested first."""
    rows = []
    detections = _detections_by_endpoint(gate)
    incidents: dict[str, int] = defaultdict(int)
    for incident in gate.incidents():
        incidents[incident.endpoint] += 1
    outliers: dict[str, int] = defaultdict(int)
    for record in gate.recent_anomalies:
        outliers[record.endpoint] += 1
    for summary in gate.endpoints():
        key = summary["endpoint"]
        with observed.lock:
            lat = [ms for _, ms in observed.latency.get(key, ())]
            statuses = dict(observed.statuses.get(key, {}))
        rows.append({
            "endpoint": key, "requests": summary["requests"],
            "p50_ms": _quantile(lat, 0.5), "p95_ms": _quantile(lat, 0.95),
            "forecast_ms": summary["predicted_ms"], "confidence": summary["confidence"],
            "outliers": outliers[key], "incidents": incidents[key],
            "errors": statuses.get(500, 0), "throttled": statuses.get(429, 0),
            "shed": statuses.get(503, 0), "nplusone": detections.get(key, []),
        })
    return rows


def before_after(observed: Observed, endpoint: str, at: float,
                 until: float | None = None) -> dict[str, float | None]:
    """p50 and p95 (ms) of the endpoint's requests started before and after ``at`` (and
    before ``until``: when a healing action changed what the endpoint serves)."""
    with observed.lock:
        pairs = list(observed.latency.get(endpoint, ()))
    before = [ms for t, ms in pairs if t < at]
    after = [ms for t, ms in pairs if at <= t < (until or float("inf"))]
    return {"p50_before": _quantile(before, 0.5), "p95_before": _quantile(before, 0.95),
            "p50_after": _quantile(after, 0.5), "p95_after": _quantile(after, 0.95)}


def incident_lines(gate: PulseGate, observed: Observed, started: float,
                   regressed_at: float | None) -> list[str]:
    """Each incident with its magnitude and evidence and the endpoint's p50/p95 before and
    after the evidence began; and whether /slow's announced regression was flagged."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = []
    incidents = gate.incidents()
    for i in incidents:  # "after": until a healing action (if any) changed the endpoint
        ba = before_after(observed, i.endpoint, i.start, switched_on_at(gate, i.endpoint))
        lines.append(
            f"incident on {i.endpoint} since +{i.start - started:.1f} s (flagged at "
            f"+{i.at - started:.1f} s): {i.window_mean_ms:.1f} ms against {i.expected_ms:.1f} "
            f"ms expected ({i.ratio:.1f}x), over {i.requests} requests in {i.windows} windows;"
            f" p50 {ms(ba['p50_before'])} -> {ms(ba['p50_after'])} ms, p95 "
            f"{ms(ba['p95_before'])} -> {ms(ba['p95_after'])} ms")
        if regressed_at is not None and i.endpoint == "GET /slow":
            lines.append("  " + _against_regression(observed, i.start, regressed_at, started,
                                                    switched_on_at(gate, i.endpoint)))
    if regressed_at is not None and not any(i.endpoint == "GET /slow" for i in incidents):
        ba = before_after(observed, "GET /slow", regressed_at)
        lines.append(
            f"no incident flagged on GET /slow, regressed at +{regressed_at - started:.1f} s: "
            f"p50 {ms(ba['p50_before'])} -> {ms(ba['p50_after'])} ms, p95 "
            f"{ms(ba['p95_before'])} -> {ms(ba['p95_after'])} ms (too little evidence yet)")
    if not incidents:
        lines.append("no incidents")
    return lines


def _against_regression(observed: Observed, start: float, regressed_at: float, started: float,
                        until: float | None) -> str:
    """The incident's estimated start against the regression the demo made, and /slow's
    p50/p95 before and after the regression itself (until the healing switch).

    The start is the first window since the detector's CUSUM last stood at 0: on a loaded
    machine a noisy window just before the regression already lifts it, so the start can
    lead the regression by a window or two. The health check polls /slow one request
    after another, ~2.5x as often at 15 ms as at 60 ms, so requests from such a lead
    weigh heavily in the p50 from the start on; split at the regression, they do not."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lead = regressed_at - start
    ba = before_after(observed, "GET /slow", regressed_at, until)
    return (f"the demo regressed GET /slow at +{regressed_at - started:.1f} s: the incident's "
            f"evidence began {abs(lead):.1f} s {'before' if lead >= 0 else 'after'} it; around "
            f"the regression p50 {ms(ba['p50_before'])} -> {ms(ba['p50_after'])} ms, p95 "
            f"{ms(ba['p95_before'])} -> {ms(ba['p95_after'])} ms")


def _detections_by_endpoint(gate: PulseGate) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for det in list(getattr(gate, "detections", ()) or ()):
        endpoint = det.get("endpoint") if isinstance(det, dict) else getattr(det, "endpoint", None)
        kind = det.get("kind") if isinstance(det, dict) else getattr(det, "kind", None)
        fix = det.get("suggestion") if isinstance(det, dict) else getattr(det, "suggestion", None)
        if endpoint and kind == "n_plus_one" and fix and fix not in out[endpoint]:
            out[endpoint].append(fix)
    return out


def print_report(rows: Sequence[dict[str, Any]], stats: dict[str, Any]) -> None:
    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None  # type: ignore[assignment,misc]

    headers = ["endpoint", "requests", "p50 ms (run)", "p95 ms (run)", "forecast ms (now)",
               "confidence", "outlier requests", "incidents", "429", "503", "5xx app", "N+1"]
    body = [[r["endpoint"], str(r["requests"]), fmt(r["p50_ms"]), fmt(r["p95_ms"]),
             fmt(r["forecast_ms"]), fmt(r["confidence"], ".0f"), str(r["outliers"]),
             str(r["incidents"]), str(r["throttled"]), str(r["shed"]), str(r["errors"]),
             "yes" if r["nplusone"] else "-"]
            for r in rows]
    if Console is not None:
        table = Table(title="pulsegate: what each endpoint taught the model")
        for h in headers:
            table.add_column(h, justify="left" if h == "endpoint" else "right")
        for line in body:
            table.add_row(*line)
        Console(width=160).print(table)
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for line in body:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    for text in LEGEND:
        print(text)
    print(f"requests {stats['requests']}, outlier requests {stats['anomalies']}, incidents "
          f"{stats['incidents']}, throttled {stats['throttled']}, shed {stats['shed']}, "
          f"internal errors {stats['internal_errors']}")


def print_query_findings(gate: PulseGate, limit: int = 6) -> None:
    """The query problems found, N+1 detector and query advisor in one list ranked as
    ``pulsegate report`` and the dashboard rank them
    (:func:`pulsegate.queries.ranking.ranked_findings`: ROI = confidence x expected saving
    in ms of database time per minute), each with its evidence and fix."""
    catalog = gate.plugs.catalog
    insights = catalog.query_insights() if catalog is not None else []
    advice = gate.advisor.report().get("findings") or [] if gate.advisor is not None else []
    rows = ranked_findings(insights, advice, gate.wall(), limit)
    print("query findings by ROI = confidence x expected saving (ms of database time per "
          "minute), N+1 detector and query advisor ranked together:" if rows else
          "query findings: none")

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for n, row in enumerate(rows, 1):
        source = "N+1 detector" if row["source"] == "nplusone" else "query advisor"
        print(f"{n:2d}. {row['kind']} on {', '.join(row['endpoints']) or '-'} ({source}): "
              f"ROI {num(row['roi'], '.1f')} = confidence {num(row['confidence'], '.2f')} x "
              f"saving {num(row['saving_ms_per_min'], '.1f')} ms/min")
        print(f"    evidence: {row['evidence']}")
        if row.get("sql"):
            print(f"    sql: {row['sql'][:100]}")
        if row.get("call_site"):
            print(f"    at {row['call_site']}")
        print(f"    fix: {row['fix']}")


def print_control(gate: PulseGate) -> None:
    """The allocator's learned limit and who it shed, by priority."""
    control = gate.stats().get("control") or {}
    alloc = control.get("allocator")
    if alloc:
        shed, admitted = alloc["shed"], alloc["admitted"]
        print(f"allocator: learned concurrency limit {alloc['limit']}; shed high "
              f"{shed['high']}/{admitted['high'] + shed['high']}, normal {shed['normal']}/"
              f"{admitted['normal'] + shed['normal']}, low {shed['low']}/"
              f"{admitted['low'] + shed['low']}")


def print_clients(tally: Tally) -> None:
    """What each kind of client experienced: the scraper throttled, the regular clients
    not, the export spike shed."""
    for who, what in (("regular", "regular clients (one API key each)"),
                      ("scraper", "scraper (one API key, flat out)"),
                      ("check", "health check polling /slow"),
                      ("export", "low-priority /report spike")):
        total = tally.count(who)
        if not total:
            continue
        t, s = tally.count(who, 429), tally.count(who, 503)
        print(f"{what:38s} {total:6d} requests: {t:5d} throttled (429) "
              f"{t / total * 100:5.1f} %, {s:5d} shed (503) {s / total * 100:5.1f} %")
