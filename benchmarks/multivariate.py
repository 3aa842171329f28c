"""What the multivariate blend adds over the univariate incident model.

Streams from ``request_streams.py`` (latency regression, memory leak, an N+1 after a
deploy, an error burst; several seeds each) are cut into windows of ``WINDOW`` requests,
as the engine's incident detection does with ``aggregation_window``:

* **univariate**: ``AnomalyModel(side="up")`` on the window mean of log latency (the
  engine's ``EndpointModel.incident``); an alarm is ``is_anomaly``;
* **blend**: the weighted noisy-OR ``MultivariateModel.blend(u, m)`` of ``u``, the
  univariate likelihood of the window, and ``m``, the share score of its requests'
  multivariate scores (``MultivariateModel``: reservoir,
  IsolationForest + range guard retrained every ``RETRAIN`` windows on what came
  before); an alarm when the blend crosses 0.5 from below (one per crossing, as the
  engine reports multivariate incidents).

An incident is detected when an alarm falls inside it; an alarm outside every incident is
a false alarm. Prints precision (alarms inside / all alarms), recall (incidents detected),
F1 and the median detection delay in windows, per scenario and overall; and the
latency-interval calibration of ``EndpointModel`` (share of requests whose latency falls
inside the forecast interval ``e^{f ± kσ}`` sent in ``x-ml-predicted-latency-ms``).

    ./.venv/bin/python benchmarks/multivariate.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from typing import cast

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

from request_streams import SCENARIOS, stream  # noqa: E402

from pulsegate.learn.anomaly import AnomalyModel  # noqa: E402
from pulsegate.learn.endpoint import METRICS, EndpointModel, transform  # noqa: E402
from pulsegate.learn.multivariate import MultivariateModel, request_features  # noqa: E402

WINDOW = 50
RETRAIN = 10
ONSET, LENGTH, N = 4000, 1000, 6000


def run(scenario: str, seed: int) -> dict[str, object]:
    em = EndpointModel(metrics=METRICS)
    uni = AnomalyModel(0.3, 3.0, warmup=10, floor_abs=0.05, floor_rel=0.0, side="up")
    mv = MultivariateModel(sample_size=1024, min_samples=256, weight=0.5, seed=seed)
    inside = total = 0
    win_lat: list[float] = []
    win_vecs: list[tuple[float, ...]] = []
    win_bad: list[bool] = []
    alarms: dict[str, list[tuple[int, bool]]] = {"univariate": [], "blend": []}
    prev_blend = 0.0
    w = 0
    for t, f, bad in stream(scenario, n=N, onset=ONSET, length=LENGTH, seed=seed):
        latency = transform("latency", f["duration_ms"])
        values: list[float | None] = [
            latency, transform("queries", f["query_count"]),
            transform("query_time", f["query_count"] * 0.5),
            transform("cpu", f["cpu_ms"]), transform("memory", f["memory_blocks"])]
        s = em.observe(values)
        if s.low_ms is not None and s.high_ms is not None and em.n > 30:
            total += 1
            inside += s.low_ms <= f["duration_ms"] <= s.high_ms
        win_lat.append(latency)
        win_vecs.append(request_features(f["duration_ms"], f["cpu_ms"], f["memory_blocks"],
                                         f["query_count"], f["repeated_share"], f["status"], t))
        win_bad.append(bad)
        if len(win_lat) < WINDOW:
            continue
        label = sum(win_bad) > WINDOW // 2
        u = uni.update(sum(win_lat) / WINDOW)
        if u.is_anomaly:
            alarms["univariate"].append((w, label))
        m = mv.score_vectors("g", win_vecs)  # type: ignore[arg-type]
        b = mv.blend(u.likelihood, mv.share_score(m)) if m else u.likelihood
        if b >= 0.5 > prev_blend:
            alarms["blend"].append((w, label))
        prev_blend = b
        for v in win_vecs:
            mv.observe("g", v)  # type: ignore[arg-type]
        if w % RETRAIN == RETRAIN - 1:
            mv.train()
        win_lat, win_vecs, win_bad = [], [], []
        w += 1
    onset_w = ONSET // WINDOW
    out: dict[str, object] = {"coverage": (inside, total)}
    for name, hits in alarms.items():
        tp = [i for i, lab in hits if lab]
        out[name] = (len(tp), len(hits) - len(tp), (min(tp) - onset_w) if tp else None)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args(argv)
    print(f"{'scenario':20s} {'model':11s} {'precision':>9s} {'recall':>7s} {'F1':>6s} "
          f"{'delay (windows, median)':>24s}")
    totals: dict[str, list[int]] = {"univariate": [0, 0, 0, 0], "blend": [0, 0, 0, 0]}
    cov_in = cov_n = 0
    for sc in SCENARIOS:
        agg: dict[str, list[int]] = {"univariate": [0, 0, 0], "blend": [0, 0, 0]}
        delays: dict[str, list[int]] = {"univariate": [], "blend": []}
        for seed in range(a.seeds):
            res = run(sc, seed)
            i, n = cast(tuple[int, int], res["coverage"])
            cov_in, cov_n = cov_in + i, cov_n + n
            for name in agg:
                tp, fp, delay = cast(tuple[int, int, "int | None"], res[name])
                agg[name][0] += tp
                agg[name][1] += fp
                agg[name][2] += delay is not None
                if delay is not None:
                    delays[name].append(delay)
        for name, (tp, fp, found) in agg.items():
            p = tp / (tp + fp) if tp + fp else 0.0
            r = found / a.seeds
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            d = statistics.median(delays[name]) if delays[name] else math.nan
            print(f"{sc:20s} {name:11s} {p:9.3f} {r:7.3f} {f1:6.3f} {d:24.1f}")
            t = totals[name]
            t[0], t[1], t[2], t[3] = t[0] + tp, t[1] + fp, t[2] + found, t[3] + a.seeds
    for name, (tp, fp, found, n) in totals.items():
        p = tp / (tp + fp) if tp + fp else 0.0
        r = found / n
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        print(f"{'ALL':20s} {name:11s} {p:9.3f} {r:7.3f} {f1:6.3f}")
    print(f"\nlatency inside the forecast interval (k=3): {cov_in / cov_n:.3f} "
          f"of {cov_n} requests")


if __name__ == "__main__":
    main()
