"""Turning what the engine found into labellable predictions and query insights.

Called from the gate's listener only when a request produced something (a query
detection, a throttle), so the common request pays nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulsegate.bounded import newest

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.records import RequestRecord
    from pulsegate.registry.parts import Ops

#: Cap on query insights kept per worker (LRU).
MAX_INSIGHTS = 500


def detections(ops: Ops, record: RequestRecord, ctx: RequestContext) -> None:
    dets = list(getattr(ctx, "detections", None) or ())
    recent = getattr(ops.gate, "detections", None)
    # The gate's recent-detection rows (dicts, shown by the dashboard) get the id too.
    rows = newest(recent, 2 * len(dets)) if recent else []
    for det in dets:
        try:
            pid = observe_detection(ops, record.endpoint, det, record.started_at)
        except Exception as exc:
            ops.faults.record("registry.detection", exc)
            continue
        fp = getattr(det, "fingerprint", None)
        for row in rows:
            if isinstance(row, dict) and "id" not in row and \
                    row.get("fingerprint") == fp and row.get("endpoint") == record.endpoint:
                row["id"] = pid
                break

def observe_detection(ops: Ops, endpoint: str, det: Any, at: float) -> str:
    """Aggregate one query detection into the insights; returns its prediction id
    (one prediction per endpoint, kind and fingerprint while the insight is kept)."""
    get = det.get if isinstance(det, dict) else lambda k, d=None: getattr(det, k, d)
    kind, fp = str(get("kind", "n_plus_one")), str(get("fingerprint", ""))
    key = f"{endpoint}|{kind}|{fp}"
    conf = float(get("confidence", 0.0) or 0.0)
    conf = conf / 100.0 if conf > 1.0 else conf
    ins = ops.insights.get(key)
    if ins is None or ops.predictions.get(ins["id"]) is None:
        summary = {"endpoint": endpoint, "kind": kind, "fingerprint": fp,
                   "sql": get("sql"), "call_site": get("call_site"),
                   "relationship": get("relationship"), "suggestion": get("suggestion")}
        p = ops.predictions.add("n1-detector", kind, conf, True, at, summary, obj=det)
        if ins is None:
            ins = {**summary, "requests": 0, "queries": 0, "total_ms": 0.0,
                   "confidence": 0.0, "first_seen": at, "last_seen": at}
        ins["id"] = p.id
    evicted = ops.insights.put(key, ins)
    if evicted is not None:
        ops.insights_dirty.discard(evicted[0])
    ins["requests"] += 1
    ins["queries"] += int(get("count", 0) or 0)
    ins["total_ms"] += float(get("total_ms", 0.0) or 0.0)
    ins["confidence"] = max(ins["confidence"], conf)
    ins["last_seen"] = at
    ops.insights_dirty.add(key)
    return str(ins["id"])

def throttle(ops: Ops, record: RequestRecord) -> None:
    client = record.client or "?"
    now = record.started_at
    last = ops.throttle_seen.get(client)
    if last is not None and now - last < 60.0:
        return
    ops.throttle_seen.put(client, now)
    score_of = ops.plugs.scores.get("rate-limit-behaviour")
    score = 1.0
    if score_of is not None:
        try:
            score = float(score_of(client))
        except Exception:
            score = 1.0
    ops.predictions.add("rate-limit-behaviour", "throttle", score, True, now,
                         {"client": client, "endpoint": record.endpoint})


def record_summary(r: RequestRecord) -> dict[str, Any]:
    """What is kept and sent of one record (predictions, alerts). Not its path: the
    route names the endpoint, and a path may hold a secret (export/paths.py folds it
    where one is shown, off the request path; this runs on it)."""
    return {"endpoint": r.endpoint, "status": r.status,
            "duration_ms": round(r.duration_ms, 3), "predicted_ms": r.predicted_ms,
            "anomaly_score": round(r.anomaly_score, 4), "queries": r.query_count,
            "metric": r.anomaly_metric, "unusual": r.unusual}
