"""Generated operations series with labelled shapes: a test set (the suite's own seeds
were looked at while the silence and re-alarm stages were built; ``suite(offset)`` and
``shape_rates(..., FRESH_SEEDS)`` give series nobody looked at).

Four families of 5-minute series (14 days, 4032 rows each), seeded:

* ``latency``: mean request latency (ms) with a mild diurnal cycle, log-normal noise, a
  heavy tail (2 % of rows carry a GC-like pause, Pareto-sized) and deploy steps of up
  to ±12 % that are *not* anomalies;
* ``requests``: Poisson request counts with a ±50 % diurnal and a weekend dip, and
  single-row upward spikes of 1.5-4x (routine for a count stream: *not* anomalies);
* ``bytes``: a byte counter at zero most of the time with bursts from zero of
  log-normal size (routine: *not* anomalies);
* ``cpu``: utilisation (%) with a diurnal cycle and AR(1) noise.

Labelled anomalies, one per series (the shapes issue 16 lists as missed): a sustained
2x latency regression; a short +30 % level bump of 30 rows and an isolated spike of 6
robust deviations in utilisation; a switch from noise to oscillation; a variance
change; a drop to zero against expected activity in the request count; a burst 8x the
usual burst size in the byte counter. Windows are NAB's: 10 % of the series length,
centred on the onset. Every family also has unlabelled series (false-alarm rate).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Sequence

ROWS = 4032  # 14 days of 5-minute rows
STEP = 300.0
START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)  # a Monday

Series = tuple[str, list[str], list[float], list[list[str]]]

#: (family, anomaly or None, seeds)
SUITE: tuple[tuple[str, str | None, tuple[int, ...]], ...] = (
    ("latency", None, (1, 2)), ("latency", "regression_2x", (3, 4)),
    ("cpu", None, (5, 6)), ("cpu", "bump_30pct", (7, 8)), ("cpu", "spike_6mad", (9, 10)),
    ("cpu", "oscillation", (11,)), ("cpu", "variance_3x", (12,)),
    ("requests", None, (13, 14)), ("requests", "drop_to_zero", (15, 16)),
    ("bytes", None, (17, 18)), ("bytes", "burst_8x", (19, 20)),
)


def stamps(n: int = ROWS) -> list[str]:
    return [(START + dt.timedelta(seconds=STEP * i)).strftime("%Y-%m-%d %H:%M:%S")
            for i in range(n)]


def diurnal(i: int, amp: float) -> float:
    hour = (i * STEP / 3600.0) % 24.0
    return 1.0 + amp * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def weekday(i: int) -> float:
    return 0.6 if (i * STEP // 86400) % 7 >= 5 else 1.0


def latency(rng: random.Random, anomaly: str | None, onset: int) -> list[float]:
    level = 120.0
    steps = {rng.randrange(600, ROWS - 100): rng.uniform(0.88, 1.12) for _ in range(3)}
    out = []
    for i in range(ROWS):
        level *= steps.get(i, 1.0)
        x = level * diurnal(i, 0.1) * rng.lognormvariate(0.0, 0.08)
        if rng.random() < 0.02:
            x *= 1.0 + 0.3 * rng.paretovariate(1.5)
        if anomaly == "regression_2x" and onset <= i < onset + 60:
            x *= 2.0
        out.append(x)
    return out


def cpu(rng: random.Random, anomaly: str | None, onset: int) -> list[float]:
    noise, out = 0.0, []
    sd = 3.0
    for i in range(ROWS):
        noise = 0.7 * noise + rng.gauss(0.0, sd * math.sqrt(1 - 0.49))
        base = 35.0 * diurnal(i, 0.25)
        x = base + noise
        if anomaly == "bump_30pct" and onset <= i < onset + 30:
            x = base * 1.3 + noise
        elif anomaly == "spike_6mad" and i == onset:
            x = base + 6.0 * sd
        elif anomaly == "oscillation" and onset <= i < onset + 150:
            x = base + 0.3 * noise + 3.0 * sd * math.sin(2 * math.pi * i / 12.0)
        elif anomaly == "variance_3x" and onset <= i < onset + 200:
            x = base + 3.0 * noise
        out.append(min(100.0, max(0.0, x)))
    return out


def requests(rng: random.Random, anomaly: str | None, onset: int) -> list[float]:
    out = []
    for i in range(ROWS):
        lam = 300.0 * diurnal(i, 0.5) * weekday(i)
        # Poisson by its normal approximation (lam >= 90 here)
        x = max(0.0, round(rng.gauss(lam, math.sqrt(lam))))
        if rng.random() < 0.005:
            x = round(x * rng.uniform(1.5, 4.0))
        if anomaly == "drop_to_zero" and onset <= i < onset + 24:
            x = 0.0
        out.append(float(x))
    return out


def byte_counter(rng: random.Random, anomaly: str | None, onset: int) -> list[float]:
    out, left, size = [], 0, 0.0
    for i in range(ROWS):
        if left == 0 and rng.random() < 0.01:
            left, size = rng.randint(1, 6), rng.lognormvariate(math.log(5e5), 0.6)
        x = 0.0
        if left:
            x, left = size * rng.uniform(0.5, 1.5), left - 1
        if anomaly == "burst_8x" and onset <= i < onset + 3:
            x = 8.0 * 5e5 * rng.uniform(0.8, 1.2)
        out.append(x)
    return out


FAMILIES = {"latency": latency, "cpu": cpu, "requests": requests, "bytes": byte_counter}


def start(seed: int) -> tuple[random.Random, int]:
    """The generator of series ``seed`` and the row its anomaly starts at (a daytime
    onset, 10:00-16:00, after the first week)."""
    rng = random.Random(seed)
    day = rng.randrange(7, 13)
    return rng, int((day * 86400 + rng.uniform(10, 16) * 3600) / STEP)


def series(family: str, anomaly: str | None, seed: int) -> tuple[list[float], int]:
    """One series' values and its anomaly's onset row."""
    rng, onset = start(seed)
    return FAMILIES[family](rng, anomaly, onset), onset


def suite(offset: int = 0) -> Iterator[Series]:
    """Every series of :data:`SUITE`: (name, timestamps, values, NAB windows); with
    ``offset`` the same families and shapes from seeds ``seed + offset`` (fresh series:
    the suite's own seeds were looked at while the shape stages were built)."""
    ts = stamps()
    width = int(0.1 * ROWS)
    for family, anomaly, seeds in SUITE:
        for seed in seeds:
            seed += offset
            rng, onset = start(seed)
            values = FAMILIES[family](rng, anomaly, onset)
            windows = []
            if anomaly is not None:
                lo, hi = max(0, onset - width // 2), min(ROWS - 1, onset + width // 2)
                windows = [[ts[lo], ts[hi]]]
            yield f"generated_{family}/{anomaly or 'none'}_{seed}", ts, values, windows


#: The fresh seeds ``shape_rates`` judges each labelled shape on (never looked at).
FRESH_SEEDS = tuple(range(3000, 3020))


def shape_rates(score: Callable[[list[str], list[float]], list[float]], alarm: float,
                seeds: Sequence[int] | None = None, within: int = 40
                ) -> dict[str, tuple[int, int]]:
    """Per labelled shape: (series flagged, series tried), flagged = some score >=
    ``alarm`` in the ``within`` rows from the onset. ``seeds`` None: the suite's own."""
    ts = stamps()
    out: dict[str, tuple[int, int]] = {}
    for family, anomaly, own in SUITE:
        if anomaly is None:
            continue
        flagged, tried = out.get(f"{family}/{anomaly}", (0, 0))
        for seed in own if seeds is None else seeds:
            values, onset = series(family, anomaly, seed)
            scores = score(ts, values)
            flagged += any(x >= alarm for x in scores[onset:onset + within])
            tried += 1
        out[f"{family}/{anomaly}"] = (flagged, tried)
    return out
