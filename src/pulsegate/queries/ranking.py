r"""One ranked list of query findings: the N+1 detector's insights (``n_plus_one``,
``single_load_loop``, ``repeated_query``, ``write_loop``, ``unused_eager_load``) and the
query advisor's findings (``missing_index``, ``sort_without_index``,
``correlated_subquery``, ``long_in_list``, ``wide_select``), in one unit.

``pulsegate report``, the dashboard's *Findings* table and its JSON
(``/api/summary``'s ``findings``) all call :func:`ranked_findings`: one order, whoever
asks.

**Expected saving**, in ms of database time per minute, derived the same way for both
from the measured time:

.. math:: saving = f \cdot u, \qquad
   u = \frac{\text{measured ms}}{\max(1,\ \text{minutes observed})}

* an N+1 insight: :math:`f = (n-1)/n` for :math:`n` statements per affected request
  (an N+1 becomes one ``IN``/join query, a repeated query runs once, a write loop one
  bulk write); measured ms = the group's total time over the requests it hit; minutes
  observed = from the insight's first to its last sighting. Then :math:`u` = calls per
  minute × mean ms per request (:func:`insight_figures`);
* an advisor finding: :math:`f` per rule (:mod:`pulsegate.advisor.rules`: ``1 -
  selectivity`` for an index, 0.8 a sort, ...); measured ms = the fingerprint's total
  time; minutes observed = the advisor's observation window. The finding carries it as
  ``saving_ms_per_min``.

**Rank**: :math:`ROI = c \cdot saving` (:math:`c` the confidence, 0-1), highest first --
the order ``pulsegate report`` has used since the advisor joined it. Ties: larger
saving first, then kind, endpoint, id (a stable order, whatever the input's). A row
lacking its confidence or its saving (a snapshot from an older version, a finding with
no measured time) is kept, with ``roi`` None, after every row that has both.

The SQL in a row is the statement's fingerprint (literals already replaced by ``?``
where it was recorded); it is normalised once more here, so a literal that reached a
persisted row by another path is redacted before anyone shows it (the normalisation is
idempotent on a fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulsegate.queries.fingerprint import fingerprint

__all__ = ["from_advice", "from_insight", "insight_figures", "rank", "ranked_findings"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def insight_figures(insight: dict[str, Any], now: float) -> dict[str, float | None]:
    r"""An N+1 insight's figures: confidence :math:`c`, improvement :math:`g = (n-1)/n`,
    calls per minute (requests over the observed span, at least one minute), mean ms per
    request, urgency :math:`u` = calls per minute × mean ms, saving :math:`g \cdot u`
    and :math:`ROI = c \cdot g \cdot u`. Saving and ROI are None when the insight has
    no measured time; ROI also when it has no confidence."""
    requests = max(1, int(_number(insight.get("requests")) or 1))
    queries = _number(insight.get("queries", insight.get("statements")))
    per_request = (queries if queries is not None else requests) / requests
    improvement = (per_request - 1.0) / per_request if per_request > 1 else 0.0
    first = _number(insight.get("first_seen"))
    last = _number(insight.get("last_seen"))
    span = max(60.0, (now if last is None else last) - (now if first is None else first))
    calls_per_minute = requests * 60.0 / span
    total = _number(insight.get("total_ms"))
    mean_ms = None if total is None else total / requests
    urgency = None if mean_ms is None else calls_per_minute * mean_ms
    saving = None if urgency is None else improvement * urgency
    confidence = _number(insight.get("confidence"))
    return {"confidence": confidence, "improvement": improvement,
            "calls_per_minute": calls_per_minute, "mean_ms": mean_ms, "urgency": urgency,
            "saving_ms_per_min": saving,
            "roi": None if saving is None or confidence is None else confidence * saving}


def _redacted(sql: Any) -> str | None:
    return fingerprint(sql).text if isinstance(sql, str) and sql else None


def from_insight(insight: dict[str, Any], now: float) -> dict[str, Any]:
    """An N+1 insight (the registry's per endpoint, kind and fingerprint, or a fleet's
    merge of them) as a row of the ranked list; its own fields are kept."""
    fig = insight_figures(insight, now)
    endpoint = insight.get("endpoint")
    endpoints = insight.get("endpoints") or ([endpoint] if endpoint else [])
    requests = max(1, int(_number(insight.get("requests")) or 1))
    queries = _number(insight.get("queries", insight.get("statements")))
    evidence = f"{requests} request(s)"
    if queries is not None:
        evidence += f", {queries / requests:.1f} statements each"
    if fig["mean_ms"] is not None:
        evidence += f", {fig['mean_ms']:.1f} ms per request"
    if insight.get("relationship"):
        evidence += f"; loads {insight['relationship']}"
    fix = insight.get("suggestion")
    return {**insight, **fig, "source": "nplusone", "kind": insight.get("kind"),
            "endpoint": endpoints[0] if endpoints else None, "endpoints": list(endpoints),
            "call_site": insight.get("call_site"), "table": None, "fix": fix,
            "suggestion": fix, "sql": _redacted(insight.get("sql")),
            "fingerprint": insight.get("fingerprint"), "evidence": evidence}


def from_advice(finding: dict[str, Any]) -> dict[str, Any]:
    """A query advisor finding (``Finding.as_dict()``) as a row of the ranked list."""
    confidence = _number(finding.get("confidence"))
    saving = _number(finding.get("saving_ms_per_min"))
    endpoints = list(finding.get("endpoints") or [])
    return {"source": "advisor", "kind": finding.get("kind"),
            "endpoint": endpoints[0] if endpoints else None, "endpoints": endpoints,
            "call_site": None, "table": finding.get("table"), "fix": finding.get("fix"),
            "suggestion": finding.get("fix"), "sql": _redacted(finding.get("sql")),
            "fingerprint": finding.get("fingerprint"), "id": finding.get("fingerprint"),
            "confidence": confidence, "saving_ms_per_min": saving,
            "improvement": _number(finding.get("improvement")),
            "calls_per_minute": None, "mean_ms": None,
            "roi": None if saving is None or confidence is None else confidence * saving,
            "evidence": finding.get("evidence")}


def _key(row: dict[str, Any]) -> tuple[bool, float, float, str, str, str]:
    roi = row.get("roi")
    saving = row.get("saving_ms_per_min")
    return (roi is None, -(roi or 0.0), -(saving or 0.0), str(row.get("kind") or ""),
            str(row.get("endpoint") or ""), str(row.get("id") or ""))


def rank(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows highest ROI first (see the module docstring for ties and missing figures)."""
    return sorted(rows, key=_key)


def ranked_findings(insights: Iterable[dict[str, Any]], advice: Iterable[dict[str, Any]],
                    now: float, limit: int | None = None) -> list[dict[str, Any]]:
    """The N+1 ``insights`` and the advisor's findings (``advice``) as one ranked list,
    at most ``limit`` rows. Rows that are not dicts are skipped."""
    rows = [from_insight(i, now) for i in insights if isinstance(i, dict)]
    rows += [from_advice(f) for f in advice if isinstance(f, dict)]
    out = rank(rows)
    return out if limit is None else out[:max(0, limit)]
