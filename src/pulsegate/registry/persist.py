"""Writing a gate's snapshot and restoring it at start-up (layout: :mod:`.snapshot`).

Runs on the scheduler thread (snapshots), at construction (restore) and at close.
Everything here fails per item: one unreadable endpoint state is skipped and counted,
the rest of the state still loads.
"""

from __future__ import annotations

import math
import os
import socket
from typing import TYPE_CHECKING, Any

from pulsegate.registry import snapshot as snap
from pulsegate.registry.feedback import Label, Prediction
from pulsegate.registry.store import dumps

if TYPE_CHECKING:
    from pulsegate.plugins import StateProvider
    from pulsegate.registry.parts import Ops


def load_component_state(provider: StateProvider, row: Any) -> bool:
    if not isinstance(row, dict) or "state" not in row:
        return False
    provider.load_state(row["state"])
    return True


def restore_components(ops: Ops) -> None:
    """Load persisted component states into the providers registered by now (one that
    registers later gets its state when it does: ``Plugs.on_state_added``)."""
    pending = ops.persisted.pending
    for name in list(pending):
        provider = ops.plugs.states.get(name)
        if provider is None:
            continue
        row = pending.pop(name)
        try:
            load_component_state(provider, row)
        except Exception as exc:
            ops.faults.record(f"registry.restore {name}", exc)


def restore(ops: Ops) -> None:
    store, gate, c, persisted = ops.store, ops.gate, ops.config.persistence, ops.persisted
    assert store is not None
    now = ops.wall()
    workers = snap.live_workers(store, now, c.state_ttl)
    states = snap.fleet_endpoints(store, workers)
    baselines = gate.baselines
    # Least requested first, so the LRU keeps the busiest endpoints if over the cap.
    for key, state in sorted(states.items(), key=lambda kv: _number(kv[1], "n")):
        model = baselines.get(key)
        try:
            model.load_state(state)
            model.threshold = ops.latency.k
            persisted.seed[key] = model.n
        except Exception as exc:
            baselines.discard(key)
            ops.faults.record("registry.restore endpoint", exc)
    persisted.absorb = list(workers)
    persisted.loaded_at = now
    for name, row in store.read("components").items():
        persisted.pending[name] = row
    restore_components(ops)
    preds = sorted((d for d in store.read("predictions").values() if isinstance(d, dict)),
                   key=lambda d: _number(d, "at"))
    for d in preds[-ops.predictions.capacity:]:
        try:
            ops.predictions.restore(Prediction.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue
    sync_labels(ops)


def sync_labels(ops: Ops) -> None:
    """Feed labels written by other workers or the CLI into this worker's monitor."""
    assert ops.store is not None
    rows = [r for r in ops.store.read("labels").values()
            if isinstance(r, dict) and not ops.monitor.knows(str(r.get("id")))]
    rows.sort(key=lambda r: _number(r, "labelled_at"))
    for r in rows:
        try:
            ops.monitor.record(str(r["model"]), Label(
                str(r["id"]), str(r["kind"]), float(r["score"]), bool(r["predicted"]),
                bool(r["actual"]), float(r["at"])))
        except (KeyError, TypeError, ValueError):
            continue
        p = ops.predictions.get(str(r["id"]))
        if p is not None and p.correct is None:
            p.correct = bool(r["predicted"]) == bool(r["actual"])
            p.labelled_at = _number(r, "labelled_at")


def _number(row: dict[str, Any], field: str) -> float:
    """``row[field]`` as a finite number to order rows by, else 0: one damaged or
    hostile row (NaN, a string, a list) must not stop the rest being restored."""
    try:
        value = float(row.get(field, 0))
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def label_row(p: Prediction) -> dict[str, Any]:
    actual = p.actual
    return {"id": p.id, "model": p.model, "kind": p.kind, "score": p.score,
            "predicted": p.predicted, "actual": actual, "at": p.at,
            "labelled_at": p.labelled_at}


def write_snapshot(ops: Ops) -> None:
    store, gate, persisted = ops.store, ops.gate, ops.persisted
    assert store is not None
    now, w = ops.wall(), ops.worker
    puts: list[tuple[str, str, Any]] = []
    written = persisted.written_n
    current: dict[str, int] = {}
    for key, model in gate.baselines.items():
        n = current[key] = model.n
        if written.get(key) == n:
            continue  # no request since the last snapshot: its row is up to date
        own = max(0, n - persisted.seed.get(key, 0))
        puts.append((f"ep:{w}", key, {"state": model.state(), "own": own}))
    deletes = [(f"ep:{w}", k) for k in written.keys() - current.keys()]
    try:
        stats = gate.stats()
    except Exception:
        stats = dict(gate.counters)
    puts.append(("workers", w, {"pid": os.getpid(), "host": socket.gethostname(),
                                "started": ops.started, "updated": now,
                                "stats": {k: v for k, v in stats.items()
                                          if isinstance(v, (int, float, str))}}))
    for name, provider in list(ops.plugs.states.items()):
        if name in persisted.pending:  # not restored yet: keep the stored row
            continue
        try:
            row = {"state": provider.state()}
            dumps(row)  # one unserialisable component must not sink the whole snapshot
        except Exception as exc:
            ops.faults.record(f"registry.state {name}", exc)
            continue
        puts.append(("components", name, row))
    models = ops.registry.rows(only_dirty=not persisted.full_write)
    puts += [("models", k, row) for k, row in models.items()]
    preds = ops.predictions.take_dirty()
    for p in preds:
        puts.append(("predictions", p.id, p.to_dict()))
        if p.correct is not None:
            puts.append(("labels", p.id, label_row(p)))
    dirty_insights = list(ops.insights_dirty)
    ops.insights_dirty.clear()
    puts += [(f"insights:{w}", k, dict(ops.insights[k])) for k in dirty_insights
             if k in ops.insights]
    drops: list[str] = []
    if persisted.absorb:
        # The merged states of the workers this one was seeded from now live on in its
        # own rows: drop theirs unless they wrote again since (still alive).
        rows = store.read("workers")
        gone = [x for x in persisted.absorb if x != w and
                float((rows.get(x) or {}).get("updated", 0)) <= persisted.loaded_at]
        drops = [f"ep:{x}" for x in gone]
        deletes += [("workers", x) for x in gone if x in rows and
                    not store.read(f"insights:{x}")]
    try:
        store.write(puts, deletes, drops)
    except BaseException:
        # Nothing was written: keep the dirty items for the next snapshot.
        with ops.predictions.lock:
            ops.predictions.dirty.update(p.id for p in preds)
        ops.registry.dirty.update(tuple(k.split("@", 1)) for k in models)  # type: ignore[misc]
        ops.insights_dirty.update(dirty_insights)
        raise
    persisted.written_n = current
    persisted.full_write = False
    persisted.absorb = []


def label_foreign(ops: Ops) -> None:
    """Resolve feedback given to this worker for other workers' ids (see
    ``ModelOps.feedback``): label them in the store, where their owner reads it."""
    assert ops.store is not None
    rows = ops.store.read("predictions")
    now, keep, puts = ops.wall(), [], []
    while ops.foreign_labels:
        pid, correct, at = ops.foreign_labels.popleft()
        row = rows.get(pid)
        if row is None:
            if now - at < 600:  # its owner may not have written it yet
                keep.append((pid, correct, at))
            continue
        p = Prediction.from_dict(row)
        ops.predictions.restore(p)
        ops.label(p, correct, at)
        puts += [("predictions", p.id, p.to_dict()), ("labels", p.id, label_row(p))]
    ops.foreign_labels.extend(keep)
    if puts:
        ops.store.write(puts)
