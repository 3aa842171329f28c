"""Score pulsegate's default AnomalyModel on the NAB development split.

Runs the default configuration (no per-file tuning) over every labelled series and scores
it with the shared NAB scorer (``../shared/tools/nab_score.py``), standard, low-FP and
low-FN profiles, in two set-ups:

* ``AnomalyModel().update(value, at=timestamp)``: with each row's timestamp the model's
  default ``seasonality="auto"`` removes the hour-of-day/week profile once it explains
  the series (as pulsegate's incident detection runs it);
* ``AnomalyModel().update(value)``: the values alone (what ``nab_score.py --detector``
  runs), so no seasonal profile.

Also measures the per-update cost of ``AnomalyModel.update`` against a bare EWMA update
measured in the same run.

``--heldout`` adds the leave-one-category-out evaluation (``heldout.py``) over a grid of
candidate configurations, and scores the default configuration on the generated series
(``generated_series.py``), a test set no choice is made on.

    ./.venv/bin/python benchmarks/nab.py [--data DIR] [--scorer PATH] [--only CATS]
                                         [--heldout] [--sensitivity]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.util
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import generated_series  # noqa: E402
import heldout  # noqa: E402
from _common import count_bytecodes  # noqa: E402

from pulsegate.learn.anomaly import AnomalyModel  # noqa: E402
from pulsegate.learn.endpoint import EndpointModel  # noqa: E402
from pulsegate.learn.seasonal import SeasonalBaseline  # noqa: E402

SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))
ANCHORS = [("ARTime (best published)", 73.55, None, None),
           ("Numenta HTM", 69.52, None, None),
           ("relativeEntropy", 54.07, None, None),
           ("knncad", 52.54, None, None),
           ("windowedGaussian", 37.70, None, None),
           ("seed EWMA(0.3) + |z|", 0.00, None, None)]
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def load_scorer(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("nab_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the NAB scorer from {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.timezone.utc).timestamp()


Runner = Callable[[list[str], list[float]], list[float]]


def plain(ts: list[str], values: list[float]) -> list[float]:
    model = AnomalyModel()
    return [model.update(v).score for v in values]


def timestamped(ts: list[str], values: list[float]) -> list[float]:
    model = AnomalyModel()
    return [model.update(v, at=epoch(t)).score for t, v in zip(ts, values, strict=True)]


def seasonal(ts: list[str], values: list[float], model_kw: dict[str, Any] | None = None,
             season_kw: dict[str, Any] | None = None) -> list[float]:
    model = AnomalyModel(**(model_kw or {}))
    season = SeasonalBaseline(**(season_kw or {}))
    return [model.update(season.adjust(epoch(t), v)).score
            for t, v in zip(ts, values, strict=True)]


#: Parameters perturbed by ``--sensitivity`` (each scaled by 2/3 and by 3/2 alone):
#: a default that only works at one exact point is tuned to these files.
SENSITIVITY = [("model", "decay_half_life"), ("model", "rarity_rate"), ("model", "gamma"),
               ("model", "beta"), ("model", "floor_scale"), ("model", "rarity_floor"),
               ("season", "rate"), ("season", "gamma"), ("season", "gain")]


def sensitivity(ns: ModuleType, data: str, labels: dict[str, Any],
                only: set[str] | None) -> None:
    base_model, base_season = AnomalyModel(), SeasonalBaseline()
    print("\nsensitivity (seasonal + model, standard profile), one parameter at a time:")
    for where, name in SENSITIVITY:
        row = []
        for factor in (2 / 3, 3 / 2):
            model_kw: dict[str, Any] = {}
            season_kw: dict[str, Any] = {}
            if name == "decay_half_life":
                # scale the suppression half-life, not the per-row factor itself
                half = math.log(0.5) / math.log(base_model.decay)
                model_kw["decay"] = 0.5 ** (1 / (half * factor))
            elif where == "model":
                model_kw[name] = getattr(base_model, name) * factor
            else:
                value = getattr(base_season, name) * factor
                season_kw[name] = min(value, base_season.release) if name == "gain" else value
            res = evaluate(ns, data, labels, functools.partial(
                seasonal, model_kw=model_kw, season_kw=season_kw), only)
            row.append(res["standard"][0])
        print(f"  {where:6s} {name:16s} x2/3 {row[0]:6.2f}   x3/2 {row[1]:6.2f}")


def evaluate(ns: ModuleType, data: str, labels: dict[str, Any], runner: Runner,
             only: set[str] | None) -> dict[str, tuple[float, float, int, int, int]]:
    points: list[Any] = []
    for key, windows in sorted(labels.items()):
        cat, fname = key.split("/")
        if only and cat not in only:
            continue
        path = os.path.join(data, cat, fname)
        if not os.path.exists(path):
            continue
        ts, vals = ns.read_series(path)
        scores = [ns.to_score(s) for s in runner(ts, vals)]
        points.extend(ns.points_for_file(key, ts, scores, windows))
    out = {}
    for profile in PROFILES:
        (raw, thr, hit, miss, fp_rows), nwin = ns.best_threshold(points, profile)
        tpw, _, fnw = ns.PROFILES[profile]
        norm = 100.0 * (raw + fnw * nwin) / (tpw * nwin + fnw * nwin)
        out[profile] = (norm, thr, hit, miss, fp_rows)
    return out


def anomaly_model(ts: list[str], values: list[float], stamped: bool = True,
                  **kw: Any) -> list[float]:
    model = AnomalyModel(**kw)
    if not stamped:
        return [model.update(v).score for v in values]
    return [model.update(v, at=epoch(t)).score for t, v in zip(ts, values, strict=True)]


def candidates() -> list[heldout.Candidate]:
    """The configurations the held-out evaluation chooses among (the default first):
    each stage on or off (seasonal profile: timestamps given or not; suppression:
    ``decay`` 0 switches it off) and the likelihood's horizon and floor."""
    out = []
    base = AnomalyModel()
    for stamped in (True, False):
        for rate in (base.rarity_rate, 2.5e-4, 1e-4):
            for floor in (base.rarity_floor, 1e-6):
                for decay in (base.decay, 0.0):
                    kw: dict[str, Any] = {"rarity_rate": rate, "rarity_floor": floor,
                                          "decay": decay}
                    name = (f"{'ts' if stamped else 'values'} rate {rate:g} floor {floor:g}"
                            f"{'' if decay else ' no-suppr'}")
                    out.append(heldout.Candidate(name, functools.partial(
                        anomaly_model, stamped=stamped, **kw), base.alarm))
    default = f"ts rate {base.rarity_rate:g} floor {base.rarity_floor:g}"
    out.sort(key=lambda c: c.name != default)
    return out


def generated_report(ns: ModuleType, chosen: list[tuple[str, heldout.Candidate, float]]
                     ) -> None:
    """Score candidates on the generated series at a threshold chosen on NAB (or their
    own alarm): nothing here was chosen on these series."""
    series = list(generated_series.suite())
    print(f"\ngenerated series ({len(series)} series, {generated_series.ROWS} rows each, "
          "fixed seeds; looked at while the shape stages were built, fresh seeds below):")
    for label, cand, thr in chosen:
        points: list[Any] = []
        alarms: dict[str, list[int]] = {}
        files: dict[str, list[Any]] = {}
        for name, ts, values, windows in series:
            scores = cand.runner(ts, values)
            files[name] = pts = ns.points_for_file(name, ts, scores, windows)
            points.extend(pts)
            if not windows:
                fam = name.split("/")[0].removeprefix("generated_")
                got = alarms.setdefault(fam, [0, 0])
                got[0] += sum(1 for s in scores if s >= cand.alarm)
                got[1] += len(scores)
        nwin = heldout.windows_of(points)
        for how, t in (("NAB-chosen threshold", thr), ("own alarm", cand.alarm)):
            (raw, _, hit, miss, fp_rows), _ = ns.score_at(points, "standard", t)
            print(f"  {label} [{cand.name}] at {how} {t:.4f}: standard "
                  f"{heldout.normalise(ns, raw, nwin, 'standard'):6.2f}  hit {hit}/{nwin}, "
                  f"fp rows {fp_rows}")
        rates = ", ".join(f"{fam} {a / n * 1000:.2f}" for fam, (a, n) in alarms.items())
        print(f"    alarms per 1000 rows on unlabelled series at own alarm: {rates}")
        one, own = heldout.oracle_gain(ns, files)
        print(f"    one threshold for every series {one:.2f}, each at its own best {own:.2f}: "
              f"+{own - one:.2f}")
        if label == "default":
            heldout.false_alarms(cand.alarm, files, "generated series")
            fresh_generated(ns, cand)


def fresh_generated(ns: ModuleType, cand: heldout.Candidate) -> None:
    """The default on series nobody looked at: the suite's families from other seeds,
    and each labelled shape on :data:`generated_series.FRESH_SEEDS` next to the suite's
    own seeds (which the shape stages were built on)."""
    print(f"\n{cand.name} on fresh generated series (own alarm {cand.alarm}):")
    for offset in (1000, 2000):
        files = {name: ns.points_for_file(name, ts, cand.runner(ts, values), windows)
                 for name, ts, values, windows in generated_series.suite(offset)}
        points = [p for f in files.values() for p in f]
        nwin = heldout.windows_of(points)
        (raw, _, hit, _, fp_rows), _ = ns.score_at(points, "standard", cand.alarm)
        one, own = heldout.oracle_gain(ns, files)
        print(f"  seeds + {offset}: standard {heldout.normalise(ns, raw, nwin, 'standard'):6.2f}"
              f"  hit {hit}/{nwin}, fp rows {fp_rows}; own-threshold gain +{own - one:.2f}")
    own_seeds = generated_series.shape_rates(cand.runner, cand.alarm)
    fresh = generated_series.shape_rates(cand.runner, cand.alarm, generated_series.FRESH_SEEDS)
    print("  shape flagged within 40 rows of its onset: suite's seeds | fresh seeds")
    for shape, (f, n) in own_seeds.items():
        print(f"    {shape:24s} {f}/{n} | {fresh[shape][0]}/{fresh[shape][1]}")


def suppression_report(ns: ModuleType, data: str, labels: dict[str, Any]) -> None:
    """What the alarm suppression does to the default's labelled windows
    (:func:`heldout.window_verdicts`): on NAB per category, on the fresh generated
    suites, and for each shape within 40 rows of its onset on the fresh seeds. A
    suppression release rule can only win the ``hidden`` windows (and ``late`` ones'
    time); everywhere else it can only add alarms."""
    alarm = AnomalyModel().alarm

    def run(ts: list[str], values: list[float]) -> tuple[list[float], list[float]]:
        model = AnomalyModel()
        got = [model.update(v, at=epoch(t)) for t, v in zip(ts, values, strict=True)]
        return [s.score for s in got], [s.likelihood for s in got]

    def rows(ts: list[str], windows: list[list[str]]) -> list[tuple[int, int]]:
        out = []
        for lo, hi in windows:
            inside = [i for i, t in enumerate(ts) if lo <= t <= hi]
            if inside:
                out.append((inside[0], inside[-1]))
        return out

    tally: dict[str, dict[str, int]] = {}
    for key, windows in sorted(labels.items()):
        path = os.path.join(data, key)
        if not os.path.exists(path):
            continue
        ts, vals = ns.read_series(path)
        for v in heldout.window_verdicts(*run(ts, vals), rows(ts, windows), alarm):
            cat = tally.setdefault(key.split("/")[0], {})
            cat[v] = cat.get(v, 0) + 1
    for offset in (1000, 2000):
        got = tally.setdefault(f"generated, seeds + {offset}", {})
        for _, ts, vals, windows in generated_series.suite(offset):
            for v in heldout.window_verdicts(*run(ts, vals), rows(ts, windows), alarm):
                got[v] = got.get(v, 0) + 1
    ts = generated_series.stamps()
    for family, anomaly, _ in generated_series.SUITE:
        if anomaly is None:
            continue
        got = tally.setdefault(f"shape {anomaly}, within 40 rows", {})
        for seed in generated_series.FRESH_SEEDS:
            vals, onset = generated_series.series(family, anomaly, seed)
            for v in heldout.window_verdicts(*run(ts, vals), [(onset, onset + 39)], alarm):
                got[v] = got.get(v, 0) + 1
    print(f"\nwhat suppression does to the default's windows at its alarm {alarm} (hit; "
          "late = hit after a suppressed row as rare; hidden = missed only because of "
          "the suppression; below = never rare enough):")
    for where, got in tally.items():
        print(f"  {where:40s} " + "  ".join(f"{v} {got.get(v, 0)}"
                                             for v in ("hit", "late", "hidden", "below")))


def per_update_cost(n: int = 200_000) -> tuple[float, float, float, float]:
    """(µs per AnomalyModel.update, the same with a timestamp (seasonal profile on), µs
    per EndpointModel.update as the engine calls it once per request (log latency,
    nothing else, learning, the incident window), µs per bare EWMA step) on the same
    Gaussian data, best of 3."""
    rng = random.Random(7)
    xs = [rng.gauss(100.0, 10.0) for _ in range(n)]
    logs = [math.log(abs(x) + 1.0) for x in xs]
    ts = [1.7e9 + 300.0 * i for i in range(n)]
    now = [0.05 * i for i in range(n)]  # 20 requests a second: windows of 60 s roll
    best_model = best_base = best_ts = best_req = math.inf
    for _ in range(3):
        req = EndpointModel(window=60.0).update
        t0 = time.perf_counter()
        for y, t in zip(logs, now, strict=True):
            req(y, None, True, t)
        best_req = min(best_req, time.perf_counter() - t0)
        update = AnomalyModel().update
        t0 = time.perf_counter()
        for x in xs:
            update(x)
        best_model = min(best_model, time.perf_counter() - t0)
        update = AnomalyModel(seasonality="daily").update
        t0 = time.perf_counter()
        for x, t in zip(xs, ts, strict=True):
            update(x, t)
        best_ts = min(best_ts, time.perf_counter() - t0)
        level = xs[0]
        t0 = time.perf_counter()
        for x in xs:
            level += 0.3 * (x - level)
        best_base = min(best_base, time.perf_counter() - t0)
    return (best_model / n * 1e6, best_ts / n * 1e6, best_req / n * 1e6,
            best_base / n * 1e6)


def per_update_bytecodes(n: int = 1000) -> float:
    """Bytecodes per EndpointModel.update as the engine calls it (after 2000 requests
    of warm-up), counted with the interpreter's opcode trace: deterministic, unlike the
    clock on a shared machine."""
    model = EndpointModel(window=60.0)
    for i in range(2000):
        model.update(math.log(20.0 + i % 7), None, True, 0.05 * i)

    def updates(n: int) -> None:
        for i in range(2000, 2000 + n):
            model.update(math.log(20.0 + i % 7), None, True, 0.05 * i)

    return sum(count_bytecodes(updates, n).values()) / n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "nab"))
    ap.add_argument("--scorer", default=os.path.join(SHARED, "tools", "nab_score.py"))
    ap.add_argument("--only", help="comma-separated NAB categories")
    ap.add_argument("--heldout", action="store_true",
                    help="leave-one-category-out over the candidate grid, and the "
                         "generated series")
    ap.add_argument("--sensitivity", action="store_true",
                    help="also score each parameter scaled by 2/3 and 3/2")
    a = ap.parse_args(argv)
    ns = load_scorer(a.scorer)
    with open(os.path.join(a.data, "labels", "combined_windows.json")) as fh:
        labels = json.load(fh)
    only = set(a.only.split(",")) if a.only else None
    data = os.path.join(a.data, "data")
    if only and not only <= set(os.listdir(data)):
        ap.error(f"unknown category {', '.join(sorted(only - set(os.listdir(data))))}; "
                 f"choose from {', '.join(sorted(os.listdir(data)))}")
    rows = []
    for name, runner in (("AnomalyModel, values + timestamps", timestamped),
                         ("AnomalyModel, values only", plain)):
        t0 = time.perf_counter()
        res = evaluate(ns, data, labels, runner, only)
        rows.append((name, res, time.perf_counter() - t0))
    print(f"{'detector':40s} {'standard':>9s} {'low FP':>8s} {'low FN':>8s}   "
          "standard: threshold hit/missed fp_rows")
    for name, res, secs in rows:
        s, fp, fn = (res[p][0] for p in PROFILES)
        _, thr, hit, miss, fp_rows = res["standard"]
        print(f"{name:40s} {s:9.2f} {fp:8.2f} {fn:8.2f}   {thr:.4f} {hit}/{miss} {fp_rows}"
              f"  ({secs:.1f} s)")
    for name, score, _, _ in ANCHORS:
        print(f"{name:40s} {score:9.2f} {'':>8s} {'':>8s}   (published, dev split)")
    model_us, ts_us, req_us, base_us = per_update_cost()
    print(f"\nper-request update (EndpointModel.update, as the engine calls it): "
          f"{req_us:.2f} µs (budget 5 µs), {per_update_bytecodes():.0f} bytecodes"
          f"\nAnomalyModel.update: {model_us:.2f} µs per "
          f"update, {ts_us:.2f} µs with a timestamp and the daily profile on (bare EWMA "
          f"step {base_us:.2f} µs; same run, best of 3)")
    if a.heldout:
        cands = candidates()
        cats = heldout.load_points(ns, data, labels, cands)
        if only:
            cats = [c for c in cats if c in only]
        rep = heldout.report(ns, cands, cats)
        default = cands[0]
        heldout.reliability(ns, default, cats)
        (_, thr_default, *_), _ = ns.best_threshold(heldout.pool(default, cats), "standard")
        generated_report(ns, [("default", default, thr_default),
                              ("chosen on all NAB", rep.in_sample_choice,
                                                    rep.in_sample_threshold)])
        suppression_report(ns, data, labels)
    if a.sensitivity:
        sensitivity(ns, data, labels, only)


if __name__ == "__main__":
    main()
