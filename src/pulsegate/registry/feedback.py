r"""Predictions that can be labelled, and how well each model does on the labels.

Every detection pulsegate makes (a request anomaly, an incident, a query detection, a
throttled client) is a :class:`Prediction` with a stable id ``<process>-<counter>``
(the process part is a short hash of host, pid and start time, so ids from different
workers never collide). :class:`PredictionLog` keeps the most recent ones in a bounded
map so ``gate.feedback(id, correct)`` can find them.

A label says whether the prediction was *correct*. The truth is then
``actual = predicted`` if correct else ``not predicted``, which gives the confusion
counts per model -- TP, FP, TN, FN -- and from them, over the last 100, the last 1000
and all labelled predictions:

.. math::

    \text{accuracy} = \frac{TP+TN}{n},\quad
    \text{precision} = \frac{TP}{TP+FP},\quad
    \text{recall} = \frac{TP}{TP+FN},\quad
    F_1 = \frac{2PR}{P+R}

(a ratio with an empty denominator is reported as None, not 0).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from pulsegate.bounded import BoundedLRU


def process_tag() -> str:
    """Six hex characters identifying this process (host, pid, start time)."""
    raw = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}".encode()
    return hashlib.blake2s(raw, digest_size=3).hexdigest()


@dataclass
class Prediction:
    """One labellable output of a model. ``score`` is on the scale the model's tunable
    threshold applies to (see :mod:`pulsegate.registry.tuning`)."""

    id: str
    model: str
    kind: str
    score: float
    predicted: bool
    at: float
    summary: dict[str, Any] = field(default_factory=dict)
    correct: bool | None = None
    labelled_at: float | None = None

    @property
    def actual(self) -> bool | None:
        if self.correct is None:
            return None
        return self.predicted if self.correct else not self.predicted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        return cls(str(d["id"]), str(d["model"]), str(d["kind"]), float(d["score"]),
                   bool(d["predicted"]), float(d["at"]), dict(d.get("summary") or {}),
                   None if d.get("correct") is None else bool(d["correct"]),
                   None if d.get("labelled_at") is None else float(d["labelled_at"]))


class PredictionLog:
    """The last ``capacity`` predictions by id (LRU by insertion: memory is bounded)."""

    def __init__(self, capacity: int = 10_000, tag: str | None = None) -> None:
        self.capacity = capacity
        self.tag = tag or process_tag()
        self._counter = itertools.count(1)
        self._items: BoundedLRU[str, Prediction] = BoundedLRU(capacity)
        self._by_object: dict[int, str] = {}
        self._objects: dict[str, object] = {}
        self.lock = threading.Lock()
        #: Ids added or labelled since the last snapshot.
        self.dirty: set[str] = set()

    def new_id(self) -> str:
        return f"{self.tag}-{next(self._counter):x}"

    def retag(self) -> None:
        """A new process tag (after a fork: the children must not mint the same ids)."""
        self.tag = process_tag()
        self._counter = itertools.count(1)
        self.lock = threading.Lock()

    def add(self, model: str, kind: str, score: float, predicted: bool, at: float,
            summary: dict[str, Any] | None = None, obj: object | None = None) -> Prediction:
        p = Prediction(self.new_id(), model, kind, score, predicted, at, summary or {})
        with self.lock:
            evicted = self._items.put(p.id, p)
            self.dirty.add(p.id)
            if obj is not None:
                # Keep the object alive while mapped so its id() cannot be reused.
                self._by_object[id(obj)] = p.id
                self._objects[p.id] = obj
            if evicted is not None:
                old = evicted[0]
                self.dirty.discard(old)
                o = self._objects.pop(old, None)
                if o is not None:
                    self._by_object.pop(id(o), None)
        return p

    def restore(self, p: Prediction) -> None:
        with self.lock:
            if p.id not in self._items:
                self._items.put(p.id, p)

    def get(self, pid: str) -> Prediction | None:
        return self._items.get(pid)

    def id_of(self, obj: object) -> str | None:
        """The prediction id given to ``obj`` (a RequestRecord, an incident dict, a
        Detection), if it is still in the log."""
        return self._by_object.get(id(obj))

    def recent(self, limit: int = 50, model: str | None = None,
               kind: str | None = None) -> list[Prediction]:
        with self.lock:
            items = list(self._items.values())
        out = [p for p in reversed(items)
               if (model is None or p.model == model) and (kind is None or p.kind == kind)]
        return out[:limit]

    def take_dirty(self) -> list[Prediction]:
        with self.lock:
            ids, self.dirty = self.dirty, set()
            return [self._items[i] for i in ids if i in self._items]

    def __len__(self) -> int:
        return len(self._items)


class Metrics(NamedTuple):
    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def metrics_of(pairs: Iterable[tuple[bool, bool]]) -> Metrics:
    """Metrics of ``(predicted, actual)`` pairs."""
    tp = fp = tn = fn = 0
    for pred, act in pairs:
        if pred and act:
            tp += 1
        elif pred:
            fp += 1
        elif act:
            fn += 1
        else:
            tn += 1
    return from_counts(tp, fp, tn, fn)


def from_counts(tp: int, fp: int, tn: int, fn: int) -> Metrics:
    n = tp + fp + tn + fn
    acc = (tp + tn) / n if n else None
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = None
    if prec is not None and rec is not None:
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return Metrics(n, tp, fp, tn, fn, acc, prec, rec, f1)


class Label(NamedTuple):
    id: str
    kind: str
    score: float
    predicted: bool
    actual: bool
    at: float


class PerformanceMonitor:
    """Labelled predictions per model: the last ``max_labels`` (for windows and tuning)
    plus all-time confusion counts."""

    WINDOWS = (100, 1000)

    def __init__(self, max_labels: int = 10_000) -> None:
        self.max_labels = max(1000, max_labels)
        self.lock = threading.Lock()
        self._labels: dict[str, deque[Label]] = {}
        self._counts: dict[str, list[int]] = {}
        self._by_id: dict[str, Label] = {}

    def record(self, model: str, label: Label) -> None:
        """Add a label; a second label for the same id replaces the first."""
        with self.lock:
            old = self._by_id.get(label.id)
            dq = self._labels.setdefault(model, deque(maxlen=self.max_labels))
            counts = self._counts.setdefault(model, [0, 0, 0, 0])
            if old is not None:
                if old == label:
                    return
                counts[_cell(old)] -= 1
                try:
                    dq.remove(old)
                except ValueError:
                    pass
            dq.append(label)
            counts[_cell(label)] += 1
            self._by_id[label.id] = label
            if len(self._by_id) > self.max_labels * 4:
                live = {lb.id for d in self._labels.values() for lb in d}
                self._by_id = {k: v for k, v in self._by_id.items() if k in live}

    def knows(self, pid: str) -> bool:
        return pid in self._by_id

    def models(self) -> list[str]:
        return list(self._labels)

    def metrics(self, model: str, window: int | None = None) -> Metrics:
        """Over the last ``window`` labels, or all time when None."""
        with self.lock:
            if window is None:
                return from_counts(*self._counts.get(model, [0, 0, 0, 0]))
            dq = self._labels.get(model, deque())
            items = list(dq)[-window:]
        return metrics_of((lb.predicted, lb.actual) for lb in items)

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for model in self.models():
            out[model] = {f"last_{w}": self.metrics(model, w).as_dict() for w in self.WINDOWS}
            out[model]["all_time"] = self.metrics(model).as_dict()
        return out

    def samples(self, model: str, since: float | None = None,
                kinds: tuple[str, ...] | None = None) -> list[Label]:
        with self.lock:
            items = list(self._labels.get(model, ()))
        return [lb for lb in items if (since is None or lb.at >= since)
                and (kinds is None or lb.kind in kinds)]


_CELLS = {(True, True): 0, (True, False): 1, (False, False): 2, (False, True): 3}


def _cell(label: Label) -> int:
    return _CELLS[(label.predicted, label.actual)]
