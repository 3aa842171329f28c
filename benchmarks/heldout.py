"""Leave-one-category-out evaluation: every choice made without the data it is scored on.

A *candidate* is one complete detector configuration (model, stages, parameters). For
each NAB development category C, the candidate and its alarm threshold are chosen on the
other categories only (the best total there, standard profile by default) and then
scored on C. The held-out total adds those per-category raw scores (NAB's raw score is a
sum over windows and false-positive rows, so the parts add up) and normalises once.

Reported next to it, for the same candidates:

* **in-sample**: the candidate and threshold chosen on all five categories (what tuning
  on the development split gives), and its per-category share at that threshold;
* **per candidate**: its in-sample score (threshold chosen on all of the split), its
  held-out score with the candidate fixed and only the threshold chosen on the other
  four categories, and its score at the model's own default alarm threshold (no
  choice made on any data); the Spearman rank correlation of in-sample against
  held-out says how much the development total predicts held-out performance.

The NAB scorer's functions (``points_for_file``, ``best_threshold``, ``score_at``) come
from ``../shared/tools/nab_score.py`` (a re-implementation of numenta/NAB's scorer, MIT).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

Runner = Callable[[list[str], list[float]], list[float]]
Point = tuple[float, Any, float]


@dataclass
class Candidate:
    """One configuration: ``runner`` scores a series; ``alarm`` is its own threshold."""

    name: str
    runner: Runner
    alarm: float
    #: per category: the scored points of every file, in file order
    points: dict[str, list[Point]] = field(default_factory=dict)
    #: per file ("category/file.csv"): its scored points
    files: dict[str, list[Point]] = field(default_factory=dict)


@dataclass
class Report:
    #: per category: (in-sample, held-out, candidate chosen on the others, threshold)
    categories: dict[str, tuple[float, float, str, float]]
    total_in: float
    total_out: float
    #: per candidate: (in-sample, held-out threshold, at its own alarm)
    candidates: dict[str, tuple[float, float, float]]
    in_sample_choice: Candidate
    in_sample_threshold: float


def load_points(ns: ModuleType, data: str, labels: dict[str, Any],
                candidates: Sequence[Candidate]) -> list[str]:
    """Run every candidate over every labelled file; returns the categories found."""
    cats: list[str] = []
    series = []
    for key, windows in sorted(labels.items()):
        cat, fname = key.split("/")
        path = os.path.join(data, cat, fname)
        if not os.path.exists(path):
            continue
        if cat not in cats:
            cats.append(cat)
        ts, vals = ns.read_series(path)
        series.append((cat, key, ts, vals, windows))
    for cand in candidates:
        cand.points = {c: [] for c in cats}
        cand.files = {}
        for cat, key, ts, vals, windows in series:
            scores = [ns.to_score(s) for s in cand.runner(ts, vals)]
            cand.files[key] = pts = ns.points_for_file(key, ts, scores, windows)
            cand.points[cat].extend(pts)
    return cats


def windows_of(points: list[Point]) -> int:
    return len({p[1] for p in points if p[1] is not None})


def normalise(ns: ModuleType, raw: float, nwin: int, profile: str) -> float:
    tpw, _, fnw = ns.PROFILES[profile]
    if nwin == 0:
        return float("nan")
    return float(100.0 * (raw + fnw * nwin) / (tpw * nwin + fnw * nwin))


def pool(cand: Candidate, cats: Sequence[str]) -> list[Point]:
    out: list[Point] = []
    for c in cats:
        out.extend(cand.points[c])
    return out


def choose(ns: ModuleType, candidates: Sequence[Candidate], cats: Sequence[str],
           profile: str) -> tuple[Candidate, float, float]:
    """The candidate and threshold with the best raw score over ``cats``."""
    best: tuple[Candidate, float, float] | None = None
    for cand in candidates:
        (raw, thr, *_), _ = ns.best_threshold(pool(cand, cats), profile)
        if best is None or raw > best[2]:
            best = (cand, thr, raw)
    assert best is not None
    return best


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else float("nan")


def report(ns: ModuleType, candidates: Sequence[Candidate], cats: Sequence[str],
           profile: str = "standard") -> Report:
    """Print the leave-one-category-out table; returns the figures it printed."""
    nwin = {c: windows_of(candidates[0].points[c]) for c in cats}
    total_win = sum(nwin.values())
    insample, thr_all, raw_all = choose(ns, candidates, cats, profile)
    print(f"\nleave-one-category-out ({profile} profile, {len(candidates)} candidates; "
          "candidate AND threshold chosen on the other categories):")
    print(f"  {'category':24s} {'win':>3s} {'in-sample':>10s} {'held-out':>9s}   "
          "chosen on the other four")
    held_raw = 0.0
    rows = {}
    for c in cats:
        others = [o for o in cats if o != c]
        cand, thr, _ = choose(ns, candidates, others, profile)
        (raw_c, *_), _ = ns.score_at(cand.points[c], profile, thr)
        (raw_in, *_), _ = ns.score_at(insample.points[c], profile, thr_all)
        held_raw += raw_c
        shown_in = normalise(ns, raw_in, nwin[c], profile)
        shown_out = normalise(ns, raw_c, nwin[c], profile)
        if nwin[c] == 0:  # no window: NAB's normalisation is undefined, show raw cost
            print(f"  {c:24s} {0:3d} {raw_in:9.2f}r {raw_c:8.2f}r   {cand.name} @ {thr:.4f}")
        else:
            print(f"  {c:24s} {nwin[c]:3d} {shown_in:10.2f} {shown_out:9.2f}   "
                  f"{cand.name} @ {thr:.4f}")
        rows[c] = (shown_in, shown_out, cand.name, thr)
    total_in = normalise(ns, raw_all, total_win, profile)
    total_out = normalise(ns, held_raw, total_win, profile)
    print(f"  {'TOTAL':24s} {total_win:3d} {total_in:10.2f} {total_out:9.2f}   "
          f"(in-sample choice: {insample.name} @ {thr_all:.4f}; r = raw cost, no window)")
    print(f"\nper candidate ({profile}): in-sample = threshold chosen on all categories; "
          "held-out = candidate fixed, threshold chosen on the other four; "
          "at alarm = the model's own threshold")
    short = "  ".join(f"{c[:10]:>10s}" for c in cats if nwin[c])
    print(f"  {'candidate':38s} {'in-sample':>9s} {'held-out':>9s} {'at alarm':>9s}   "
          f"held-out per category: {short}")
    ins, outs = [], []
    per_cand = {}
    for cand in candidates:
        (raw_i, *_), _ = ns.best_threshold(pool(cand, cats), profile)
        raw_o = 0.0
        per_cat = []
        for c in cats:
            (_, thr, *_), _ = ns.best_threshold(pool(cand, [o for o in cats if o != c]),
                                                profile)
            (r, *_), _ = ns.score_at(cand.points[c], profile, thr)
            raw_o += r
            if nwin[c]:
                per_cat.append(f"{normalise(ns, r, nwin[c], profile):10.2f}")
        (raw_a, *_), _ = ns.score_at(pool(cand, cats), profile, cand.alarm)
        i, o, a = (normalise(ns, x, total_win, profile) for x in (raw_i, raw_o, raw_a))
        ins.append(i)
        outs.append(o)
        per_cand[cand.name] = (i, o, a)
        print(f"  {cand.name:38s} {i:9.2f} {o:9.2f} {a:9.2f}   "
              f"{'':22s}{'  '.join(per_cat)}")
    if len(candidates) > 2:
        print(f"  rank correlation in-sample vs held-out: {spearman(ins, outs):.2f}")
    return Report(rows, total_in, total_out, per_cand, insample, thr_all)


def reliability(ns: ModuleType, cand: Candidate, cats: Sequence[str],
                edges: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.01)) -> None:
    """Print, per score bin, how many rows (after NAB's probation) scored in it and the
    share of them inside a labelled window; and per category the rows at or above the
    candidate's own alarm per 1000 rows."""
    print(f"\nreliability of {cand.name}: score bin -> rows, share inside a labelled window")
    pts = pool(cand, cats)
    for lo, hi in itertools.pairwise(edges):
        inside = [p[1] is not None for p in pts if lo <= p[0] < hi]
        share = f"{sum(inside) / len(inside):.2f}" if inside else "-"
        print(f"  [{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}  {len(inside):6d} rows"
              f"  {share}")
    rates = ", ".join(
        f"{c} {sum(1 for p in cand.points[c] if p[0] >= cand.alarm) / len(cand.points[c]) * 1000:.2f}"
        for c in cats if cand.points[c])
    print(f"  alarms (score >= {cand.alarm}) per 1000 rows: {rates}")
    files = {k: v for k, v in cand.files.items() if k.split("/")[0] in cats}
    one, own = oracle_gain(ns, files)
    print(f"  one threshold for every series {one:.2f}, each series at its own best "
          f"{own:.2f}: +{own - one:.2f} (0 = scores mean the same on every series)")
    false_alarms(cand.alarm, files, "NAB development")


def oracle_gain(ns: ModuleType, files: dict[str, list[Point]],
                profile: str = "standard") -> tuple[float, float]:
    """(score at one best threshold for all series, score with each series at its own
    best threshold): the difference is what incomparable scores cost. Issue 16 measured
    +18.7 for pulsegate on operations series outside the repository, +9 for numenta HTM
    and +6 for ARTime; 0 means a score means the same on every series."""
    pts = [p for f in files.values() for p in f]
    (raw_one, *_), nwin = ns.best_threshold(pts, profile)
    raw_own = sum(ns.best_threshold(f, profile)[0][0] for f in files.values())
    return normalise(ns, raw_one, nwin, profile), normalise(ns, raw_own, nwin, profile)


def false_alarms(alarm: float, files: dict[str, list[Point]], what: str) -> None:
    """Per series, rows at or above ``alarm`` outside every labelled window (after
    NAB's probation) per 1000 such rows: a series with no anomaly at all is marked *.
    Comparable scores give every series a similar, low rate."""
    print(f"\nfalse alarms per 1000 unlabelled rows at the own alarm {alarm} ({what}; "
          "* = series with no anomaly):")
    rates = []
    for key, pts in sorted(files.items()):
        out = [p[0] for p in pts if p[1] is None]
        rate = sum(1 for s in out if s >= alarm) / len(out) * 1000 if out else 0.0
        clean = not any(p[1] is not None for p in pts)
        rates.append(rate)
        print(f"  {key:58s}{'*' if clean else ' '} {rate:6.2f}")
    if rates:
        srt = sorted(rates)
        print(f"  median {srt[len(srt) // 2]:.2f}, max {srt[-1]:.2f}, series with none "
              f"{sum(1 for r in rates if r == 0.0)}/{len(rates)}")


def window_verdicts(scores: Sequence[float], likelihoods: Sequence[float],
                    windows: Sequence[tuple[int, int]], alarm: float) -> list[str]:
    """Per window (first and last row, inclusive), what the alarm suppression did to it:

    * ``hit``: some score in the window reaches ``alarm``, and no row before the first
      such one had a likelihood (the score before suppression) that reached it;
    * ``late``: hit, but an earlier row of the window reached ``alarm`` in likelihood
      and was silenced by the memory of an earlier alarm;
    * ``hidden``: no score reaches ``alarm`` but some likelihood does: missed only
      because of the suppression (what a release rule could win back);
    * ``below``: no likelihood reaches ``alarm`` (no suppression rule can find it).
    """
    out = []
    for lo, hi in windows:
        first = next((i for i in range(lo, hi + 1) if scores[i] >= alarm), None)
        rare = next((i for i in range(lo, hi + 1) if likelihoods[i] >= alarm), None)
        if first is not None:
            out.append("late" if rare is not None and rare < first else "hit")
        else:
            out.append("below" if rare is None else "hidden")
    return out
