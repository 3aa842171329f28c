"""How the ``pulsegate`` command prints: tables for people, numbers as they are.

On a terminal a table uses ``rich`` when it is installed (the ``cli`` extra), folding
cells to the terminal's width. Off a terminal (a pipe, a file, ``| less``) it is plain
text: columns padded to their widest cell and never wrapped, so an identifier (a call
site, a fix such as ``selectinload(Author.books)``) is never cut in two and ``grep``
finds it whole. A float that holds an integer (a count summed from JSON) prints as one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["STATE_HINT", "ago", "fmt", "print_findings", "table"]

#: How to give the CLI something to read, for messages on empty or missing state.
STATE_HINT = ("pulsegate reads the state a running app persists: configure the app with "
              "state_dir=\"/some/dir\" (or state_redis_url=...; Django: PULSEGATE = "
              "{\"state_dir\": ...}, Flask: PULSEGATE_STATE_DIR), let it serve requests "
              "(it writes every snapshot_interval seconds and at shutdown), then run "
              "`pulsegate report --state-dir /some/dir` (or set PULSEGATE_STATE_DIR)")


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:  # a count that went through JSON or a sum
            return str(int(v))
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    try:
        if not sys.stdout.isatty():  # a pipe or a file: plain text, nothing wrapped
            raise ImportError
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
        if not cells:
            print("(none)")
        return
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in cells:
        t.add_row(*r)
    Console(width=max(100, _term_width())).print(t)


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 140


def ago(t: float | None, now: float) -> str:
    if not t:
        return "-"
    d = max(0.0, now - float(t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{d / size:.1f}{unit} ago"
    return f"{d:.0f}s ago"


def print_findings(rows: Sequence[dict[str, Any]]) -> None:
    """The ranked query findings (:func:`pulsegate.queries.ranking.ranked_findings`)."""
    table("query findings by ROI = confidence x expected saving (ms of database time per "
          "minute; N+1 detector and query advisor)",
          ["roi", "saving ms/min", "kind", "endpoint", "calls/min", "mean ms", "improve",
           "conf", "call site / table", "fix", "id"],
          [(i["roi"], i["saving_ms_per_min"], i.get("kind"), i.get("endpoint"),
            i["calls_per_minute"], i["mean_ms"],
            "-" if i["improvement"] is None else f"{i['improvement']:.0%}", i["confidence"],
            i.get("call_site") or i.get("table"), i.get("fix"), i.get("id")) for i in rows])
