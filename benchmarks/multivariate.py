"""Univariate vs univariate+IsolationForest blend on synthetic request streams.

For each scenario of ``request_streams.py``: per-request univariate scores from
``EndpointModel`` (all metrics, the engine's default), and the blend with
``MultivariateModel`` (reservoir, retrained every 500 requests on what came before,
each batch scored by the forest trained before it). A request is flagged when its score
≥ 0.5. Prints precision / recall / F1 and the detection delay (requests from the
incident onset to the first flag inside it), plus the latency-interval calibration:
how often the observed latency falls inside the forecast interval ``e^{f ± kσ}``.

    ./.venv/bin/python benchmarks/multivariate.py
"""

from __future__ import annotations

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

from request_streams import SCENARIOS, stream  # noqa: E402

from pulsegate.learn.endpoint import METRICS, EndpointModel, transform  # noqa: E402
from pulsegate.learn.multivariate import MultivariateModel, request_features  # noqa: E402

BATCH = 500


def prf(flags: list[bool], labels: list[bool], onset: int) -> tuple[float, float, float, int | None]:
    tp = sum(f and y for f, y in zip(flags, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flags, labels, strict=True))
    fn = sum(y and not f for f, y in zip(flags, labels, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    first = next((i for i, (f, y) in enumerate(zip(flags, labels, strict=True)) if f and y), None)
    return p, r, f1, None if first is None else first - onset


def run(scenario: str, onset: int = 4000) -> dict[str, object]:
    em = EndpointModel(metrics=METRICS)
    mv = MultivariateModel(sample_size=1024, min_samples=256, weight=0.5)
    uni: list[float] = []
    vecs: list[tuple[float, ...]] = []
    labels: list[bool] = []
    inside = total = 0
    for t, f, bad in stream(scenario, onset=onset):
        values = [transform("latency", f["duration_ms"]), transform("queries", f["query_count"]),
                  transform("query_time", f["query_count"] * 0.5),
                  transform("cpu", f["cpu_ms"]), transform("memory", f["memory_blocks"])]
        s = em.observe(values)
        if s.low_ms is not None and s.high_ms is not None and em.n > 30:
            total += 1
            inside += s.low_ms <= f["duration_ms"] <= s.high_ms
        uni.append(s.score)
        vecs.append(request_features(f["duration_ms"], f["cpu_ms"], f["memory_blocks"],
                                     f["query_count"], f["repeated_share"], f["status"], t))
        labels.append(bad)
    blend = list(uni)
    for start in range(0, len(vecs), BATCH):
        batch = vecs[start:start + BATCH]
        scores = mv.score_vectors("g", batch)  # type: ignore[arg-type]
        if scores:
            for j, m in enumerate(scores):
                blend[start + j] = mv.blend(uni[start + j], m)
        for v in batch:
            mv.observe("g", v)  # type: ignore[arg-type]
        mv.train()
    return {"uni": prf([s >= 0.5 for s in uni], labels, onset),
            "blend": prf([s >= 0.5 for s in blend], labels, onset),
            "coverage": inside / total if total else math.nan}


def main() -> None:
    print(f"{'scenario':20s} {'model':8s} {'prec':>6s} {'recall':>7s} {'F1':>6s} {'delay':>6s}")
    for sc in SCENARIOS:
        res = run(sc)
        for name in ("uni", "blend"):
            p, r, f1, d = res[name]  # type: ignore[misc]
            print(f"{sc:20s} {name:8s} {p:6.3f} {r:7.3f} {f1:6.3f} {d if d is not None else '-':>6}")
        print(f"{sc:20s} latency inside forecast interval (k=3): {res['coverage']:.3f}")


if __name__ == "__main__":
    main()
