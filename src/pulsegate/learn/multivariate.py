"""Multivariate background model: an IsolationForest per endpoint group, trained on a
reservoir sample of request feature vectors, off the request path.

The request path only counts and, for the few sampled requests, builds one 7-float
vector (reservoir sampling with Vitter's skip counting: O(1), no allocation for the
requests that are not kept). Training and scoring run on ``gate.scheduler``;
scikit-learn is imported lazily there, never at module import.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from pulsegate.bounded import BoundedLRU

#: The features of one request, in vector order.
FEATURES = ("log_latency", "log_cpu", "log_memory", "log_queries", "repeated_share",
            "status_class", "hour")

Vector = tuple[float, float, float, float, float, float, float]

#: Standard deviation of the training jitter, in feature units (log scales, shares).
_JITTER = 0.05


def request_features(duration_ms: float, cpu_ms: float | None, memory_blocks: int | None,
                     query_count: int, repeated_share: float, status: int,
                     epoch: float) -> Vector:
    r"""The feature vector of one request: :math:`\log` latency (ms), :math:`\log(1+x)`
    of CPU ms and query count, signed :math:`\log(1+|x|)` of the allocation delta, the
    share of statements that repeat an earlier one (:math:`1 - \text{distinct}/n`), the
    status class (2 for 2xx, ..., 5 for 5xx) and the hour of day (UTC, 0-23)."""
    mem = float(memory_blocks or 0)
    return (math.log(duration_ms if duration_ms > 1e-3 else 1e-3),
            math.log1p(cpu_ms if cpu_ms is not None and cpu_ms > 0 else 0.0),
            math.log1p(mem) if mem >= 0 else -math.log1p(-mem),
            math.log1p(query_count),
            repeated_share,
            float(status // 100),
            float(int(epoch // 3600) % 24))


def repeated_share(statements: Sequence[str]) -> float:
    """Share of statements that repeat an earlier statement of the same request."""
    n = len(statements)
    return 1.0 - len(set(statements)) / n if n else 0.0


def feature_bounds(sample: Sequence[Vector], q: float = 0.005,
                   min_scale: float = 0.25) -> list[tuple[float, float, float]]:
    """Per feature: the ``q`` and ``1-q`` quantiles of the sample and a robust scale
    (inter-quartile range, at least ``min_scale``)."""
    out = []
    n = len(sample)
    for j in range(len(FEATURES)):
        col = sorted(v[j] for v in sample)
        lo, hi = col[int(q * (n - 1))], col[int((1 - q) * (n - 1))]
        iqr = col[int(0.75 * (n - 1))] - col[int(0.25 * (n - 1))]
        out.append((lo, hi, iqr if iqr > min_scale else min_scale))
    return out


def range_score(bounds: Sequence[tuple[float, float, float]], v: Sequence[float],
                k: float = 3.0) -> float:
    r"""Range guard: :math:`e = \max_j \max(0, x_j - hi_j, lo_j - x_j) / scale_j` and
    :math:`e^2/(e^2+k^2)` -- 0.5 at :math:`k` scales beyond the training range. An
    isolation forest cannot see past the range it was trained on (a point beyond it
    follows the extreme training points' paths), so this catches plain novelty."""
    e = 0.0
    for (lo, hi, scale), x in zip(bounds, v, strict=False):
        d = (x - hi) if x > hi else (lo - x) if x < lo else 0.0
        if d / scale > e:
            e = d / scale
    return e * e / (e * e + k * k)


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream (Vitter's algorithm L).

    ``due()`` is the O(1) question asked on every item (is the next one kept?); only
    kept items are built and stored, with :meth:`put`."""

    __slots__ = ("items", "next", "rng", "seen", "size", "w")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.items: list[Vector] = []
        self.seen = 0
        self.rng = rng
        self.w = math.exp(math.log(rng.random() or 1e-12) / size)
        self.next = size  # index (0-based) of the next item to keep once full

    def due(self) -> bool:
        """Count one item; True when it must be kept (then call :meth:`put`)."""
        i = self.seen
        self.seen = i + 1
        return i < self.size or i == self.next

    def put(self, item: Vector) -> None:
        items = self.items
        if len(items) < self.size:
            items.append(item)
            return
        rng = self.rng
        items[rng.randrange(self.size)] = item
        # skip ahead: geometric gap with the current weight (algorithm L)
        self.w *= math.exp(math.log(rng.random() or 1e-12) / self.size)
        gap = math.floor(math.log(rng.random() or 1e-12) / math.log1p(-self.w)) \
            if self.w < 1.0 else 0
        self.next = self.seen + gap


class Group:
    """Per endpoint group: its reservoir, its recent vectors (with their univariate
    scores), the trained forest and the last blended score."""

    __slots__ = ("bounds", "forest", "keep", "last", "recent", "reservoir", "seen_at_assess",
                 "stride", "tick", "trained_on", "version")

    def __init__(self, size: int, recent: int, rng: random.Random) -> None:
        self.reservoir = Reservoir(size, rng)
        self.recent: deque[tuple[Vector, float]] = deque(maxlen=recent)
        self.forest: Any = None
        #: Per feature (low, high, scale) of the training sample, for the range guard.
        self.bounds: list[tuple[float, float, float]] = []
        self.trained_on = 0
        self.version = 0
        self.tick = 0
        # No recent buffer before the first assessment sets the stride from the
        # traffic: nothing could score those requests anyway (no forest yet).
        self.stride = 1 << 30
        self.keep = False
        self.seen_at_assess = 0
        self.last: dict[str, float] | None = None


class MultivariateModel:
    r"""IsolationForest per endpoint group, blended with the univariate score.

    * **Sampling** (request path): a reservoir of ``sample_size`` vectors per group, and
      a recent buffer of the last ``recent`` sampled vectors (one request in
      ``stride``, adapted so the buffer spans about one training interval).
    * **Training** (background, every ``interval`` s): a group with at least
      ``min_samples`` vectors and new data gets a fresh
      ``IsolationForest(n_estimators, contamination)`` fitted on the reservoir (less
      the vectors the previous forest flags, while they are a minority) plus
      :math:`\mathcal N(0, 0.05^2)` jitter per feature; ``version`` counts trainings
      (``version_string()`` is what the registry reads).
    * **Per-vector score**: with :math:`s(x) = 2^{-E[h(x)]/c(n)}` the forest's anomaly
      score and :math:`\tau` its contamination cut-off,
      :math:`m(x) = \mathrm{clip}(0.5 + (s - \tau)/(2(1-\tau)), 0, 1)` -- 0.5 at the
      cut-off, like the univariate score at :math:`|z| = k` -- or the range guard
      (:func:`range_score`) when that is higher.
    * **Group score**: over the recent buffer, the share of requests anomalous by each
      model (:meth:`share_score`: 0.5 at 10 %), blended by a weighted noisy-OR
      (:meth:`blend`, ``weight`` w); an incident when it reaches 0.5 (reported once
      per crossing).
    """

    def __init__(self, *, sample_size: int = 2048, contamination: float = 0.01,
                 weight: float = 0.5, min_samples: int = 256, n_estimators: int = 50,
                 recent: int = 256, max_groups: int = 100, seed: int = 0) -> None:
        if sample_size < 16 or min_samples < 16 or min_samples > sample_size:
            raise ValueError("need 16 <= min_samples <= sample_size")
        if not 0.0 < contamination <= 0.5:
            raise ValueError("contamination must be in (0, 0.5]")
        if not 0.0 <= weight <= 1.0:
            raise ValueError("weight must be in [0, 1]")
        self.sample_size = sample_size
        self.contamination = contamination
        self.weight = weight
        self.min_samples = min_samples
        self.n_estimators = n_estimators
        self.recent_size = recent
        self.max_groups = max_groups
        self.rng = random.Random(seed)
        self.seed = seed
        self.groups: BoundedLRU[str, Group] = BoundedLRU(max_groups)
        #: Trainings so far, all groups together: the model version counter.
        self.version = 0
        self.trainings = 0

    def version_string(self) -> str:
        return f"iforest-{self.version}"

    # --- request path: O(1) -------------------------------------------------------------

    def group(self, key: str) -> Group:
        groups = self.groups
        g = groups.get(key)
        if g is None:
            g = Group(self.sample_size, self.recent_size, self.rng)
            groups.put(key, g)
        return g

    def wants(self, key: str) -> Group | None:
        """Count one request of ``key``; the group when this request must be sampled
        (into the reservoir or the recent buffer), else None."""
        g = self.groups.get(key) or self.group(key)
        r = g.reservoir  # Reservoir.due() inlined: this runs on every request
        i = r.seen
        r.seen = i + 1
        keep = g.keep = i < r.size or i == r.next
        tick = g.tick + 1
        if tick >= g.stride:
            g.tick = 0
            return g
        g.tick = tick
        return g if keep else None

    def add(self, g: Group, vector: Vector, univariate: float) -> None:
        """Store a sampled vector (call only when :meth:`wants` returned the group)."""
        if g.keep:
            g.reservoir.put(vector)
        if g.tick == 0:
            g.recent.append((vector, univariate))

    def observe(self, key: str, vector: Vector, univariate: float = 0.0) -> None:
        """Convenience for benchmarks and tests: count and sample one vector."""
        g = self.wants(key)
        if g is not None:
            self.add(g, vector, univariate)

    # --- background -----------------------------------------------------------------

    def train(self) -> int:
        """Retrain every group with enough new data; returns how many were trained."""
        trained = 0
        for g in list(self.groups.values()):
            r = g.reservoir
            if len(r.items) < self.min_samples or r.seen == g.trained_on:
                continue
            from sklearn.ensemble import IsolationForest  # lazy: background only

            forest = IsolationForest(n_estimators=self.n_estimators,
                                     contamination=self.contamination,
                                     random_state=self.seed + self.trainings)
            # A feature that was constant in the sample can never be split on, so a
            # forest would be blind to it (an N+1 at normal latency); a little seeded
            # jitter gives every feature a range to split.
            jitter = random.Random(self.seed + self.trainings)
            sample = self._normal_part(g, r.items)
            forest.fit([[x + jitter.gauss(0.0, _JITTER) for x in v] for v in sample])
            g.forest = forest
            g.bounds = feature_bounds(sample)
            g.trained_on = r.seen
            self.version += 1
            self.trainings += 1
            g.version = self.version
            trained += 1
        return trained

    def _normal_part(self, g: Group, items: list[Vector]) -> list[Vector]:
        """The sample without the vectors the current model finds anomalous, so an
        ongoing incident is not learnt as normal -- unless they are the majority: then
        behaviour has changed for good (a deploy) and the new forest adopts it."""
        if g.forest is None:
            return items
        key = next((k for k, v in self.groups.items() if v is g), None)
        scores = self.score_vectors(key, items) if key is not None else None
        if not scores:
            return items
        kept = [v for v, m in zip(items, scores, strict=True) if m < 0.5]
        return kept if 2 * len(kept) >= len(items) and len(kept) >= self.min_samples \
            else items

    def score_vectors(self, key: str, vectors: Sequence[Vector]) -> list[float] | None:
        """Per-vector multivariate scores :math:`m(x)` in [0, 1]; None before training."""
        g = self.groups.get(key)
        if g is None or g.forest is None or not vectors:
            return None if g is None or g.forest is None else []
        forest = g.forest
        s = -forest.score_samples([list(v) for v in vectors])
        tau = -float(forest.offset_)
        span = 2.0 * (1.0 - tau) if tau < 1.0 else 1.0
        out = []
        for x, v in zip(s, vectors, strict=True):
            m = min(1.0, max(0.0, 0.5 + (float(x) - tau) / span))
            guard = range_score(g.bounds, v)
            out.append(guard if guard > m else m)
        return out

    def blend(self, univariate: float, multivariate: float) -> float:
        r"""Weighted noisy-OR: :math:`1 - (1-u)^{a}(1-m)^{b}` with
        :math:`a = (1-w)/\max(w, 1-w)`, :math:`b = w/\max(w, 1-w)`: ``weight`` 0 gives
        :math:`u`, 1 gives :math:`m`, 0.5 the plain noisy-OR -- either score alone can
        raise an alarm, and two half-convinced ones add up."""
        w = self.weight
        top = w if w > 0.5 else 1.0 - w
        keep_u: float = (1.0 - univariate) ** ((1.0 - w) / top)
        keep_m: float = (1.0 - multivariate) ** (w / top)
        return 1.0 - keep_u * keep_m

    @staticmethod
    def share_score(scores: Sequence[float], half: float = 0.1) -> float:
        r"""Score of a batch from the share :math:`q` of its requests scoring >= 0.5:
        :math:`q^2/(q^2 + h^2)` -- 0.5 when a share :math:`h` (10 %) of the requests are
        anomalous, against about the contamination share in normal traffic."""
        if not scores:
            return 0.0
        q = sum(1 for x in scores if x >= 0.5) / len(scores)
        return q * q / (q * q + half * half)

    def assess(self, key: str) -> dict[str, float] | None:
        """Score the group's recent buffer: the share scores (:meth:`share_score`) of
        its univariate and multivariate request scores and their :meth:`blend` (None
        before training or without recent data). Clears the buffer."""
        g = self.groups.get(key)
        if g is None:
            return None
        if g.forest is None or not g.recent:
            g.recent.clear()  # requests from before any forest: nothing to compare with
            return None
        recent = list(g.recent)
        g.recent.clear()
        m = self.score_vectors(key, [v for v, _ in recent]) or []
        u = self.share_score([s for _, s in recent])
        mm = self.share_score(m)
        out = {"univariate": u, "multivariate": mm, "score": self.blend(u, mm),
               "samples": float(len(recent)), "version": float(g.version)}
        g.last = out
        return out

    def retune_stride(self, key: str, requests_per_interval: float) -> None:
        """Sample one request in ``stride`` into the recent buffer so that it spans
        about one interval of traffic."""
        g = self.groups.get(key)
        if g is not None:
            g.stride = max(1, int(requests_per_interval / self.recent_size))

    def stats(self) -> dict[str, Any]:
        return {"version": self.version_string(), "groups": len(self.groups),
                "trained_groups": sum(1 for g in self.groups.values() if g.forest is not None),
                "trainings": self.trainings}


def attach(gate: Any, model: MultivariateModel, interval: float) -> MultivariateModel:
    """Wire ``model`` into a :class:`~pulsegate.engine.PulseGate`: a listener samples
    finished requests (O(1) for the ones not kept) and a scheduler job named
    ``"multivariate"`` trains, scores and blends every ``interval`` seconds, recording
    an incident (``"source": "multivariate"``) when a group's blended score reaches 0.5."""

    cpu_index = gate.metrics.index("cpu") if "cpu" in gate.metrics else None

    def listener(record: Any, ctx: Any) -> None:
        key = f"{record.method} {record.route}"
        g = model.wants(key)
        if g is None:
            return
        queries = ctx.queries
        share = repeated_share([q.sql for q in queries]) if queries else 0.0
        cpu = record.cpu_ms
        if cpu is None and cpu_index is not None:
            # Not a CPU sample: impute the endpoint's learned CPU level (its best point
            # estimate) rather than a zero the forest would take for a real value.
            baseline = gate.baselines.peek(key)
            cpu = math.expm1(baseline.level[cpu_index]) if baseline is not None else None
        model.add(g, request_features(record.duration_ms, cpu, record.memory_blocks,
                                      record.query_count, share, record.status,
                                      record.started_at), record.anomaly_score)

    def job() -> None:
        # assess the recent requests with the forest trained *before* them, then retrain
        for key, g in list(model.groups.items()):
            before = g.last["score"] if g.last else 0.0
            seen = g.reservoir.seen
            model.retune_stride(key, seen - g.seen_at_assess)
            g.seen_at_assess = seen
            res = model.assess(key)
            if res is not None and res["score"] >= 0.5 > before:
                gate.counters["incidents"] += 1
                gate.incidents.append({"endpoint": key, "at": gate.wall(),
                                       "source": "multivariate", "score": res["score"],
                                       "univariate": res["univariate"],
                                       "multivariate": res["multivariate"],
                                       "model_version": model.version_string()})
        model.train()

    gate.listeners.append(listener)
    gate.scheduler.every(interval, job, name="multivariate")
    gate.plugs.add_stats("multivariate", model)  # the registry records its training version
    return model
