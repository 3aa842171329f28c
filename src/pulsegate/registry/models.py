"""The model registry: which models pulsegate runs, their versions and configuration.

Each model (``latency-baseline``, ``n1-detector``, ``rate-limit-behaviour``,
``allocator``, ...) has a history of :class:`ModelVersion` s. A configuration change
creates a new semantic version -- minor bump when values change, major bump when the
set of configuration keys changes -- and deploys it; ``rollback(name, version)``
re-deploys an earlier version. Nothing is ever deleted, so every change is reversible.
``on_change(version)`` is called for every deployment so the owner can apply the
configuration to the live components.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: The models pulsegate registers by default.
DEFAULT_MODELS = ("latency-baseline", "n1-detector", "rate-limit-behaviour", "allocator")


def parse_version(v: str) -> tuple[int, int, int]:
    parts = v.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a semantic version: {v!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


@dataclass
class ModelVersion:
    """One version of one model. ``metrics`` holds its measured performance (accuracy,
    F1, ... and the ``baseline_*`` figures degradation is judged against)."""

    name: str
    version: str
    config: dict[str, Any]
    created_at: float
    deployed_at: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelVersion:
        parse_version(str(d["version"]))
        return cls(str(d["name"]), str(d["version"]), dict(d.get("config") or {}),
                   float(d["created_at"]),
                   None if d.get("deployed_at") is None else float(d["deployed_at"]),
                   dict(d.get("metrics") or {}), str(d.get("note", "")),
                   str(d.get("description", "")))


class UnknownModel(KeyError):
    pass


class ModelRegistry:
    """Versions of every model; the *active* one is the most recently deployed."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 on_change: Callable[[ModelVersion], None] | None = None) -> None:
        self.wall = wall
        self.on_change = on_change
        self.lock = threading.RLock()
        self._versions: dict[str, dict[str, ModelVersion]] = {}
        self._active: dict[str, str] = {}
        #: Versions created or changed since the last snapshot (name, version).
        self.dirty: set[tuple[str, str]] = set()

    # --- reading -------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
            return list(self._versions)

    def __contains__(self, name: object) -> bool:
        return name in self._versions

    def active(self, name: str) -> ModelVersion:
        with self.lock:
            try:
                return self._versions[name][self._active[name]]
            except KeyError:
                raise UnknownModel(name) from None

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        if version is None:
            return self.active(name)
        with self.lock:
            try:
                return self._versions[name][version]
            except KeyError:
                raise UnknownModel(f"{name}@{version}") from None

    def history(self, name: str) -> list[ModelVersion]:
        """Every version, oldest first."""
        with self.lock:
            if name not in self._versions:
                raise UnknownModel(name)
            return sorted(self._versions[name].values(), key=lambda v: parse_version(v.version))

    def summaries(self) -> list[dict[str, Any]]:
        """One summary row per model (the active version)."""
        out = []
        for name in self.names():
            v = self.active(name)
            out.append({"name": name, "version": v.version, "config": dict(v.config),
                        "deployed_at": v.deployed_at, "versions": len(self._versions[name]),
                        "metrics": dict(v.metrics)})
        return out

    # --- writing -------------------------------------------------------------------

    def register(self, name: str, config: Mapping[str, Any], description: str = "",
                 tuned: tuple[str, ...] = ("threshold",)) -> ModelVersion:
        """Make sure ``name`` exists. A new model starts at 1.0.0. A known one (restored
        from persisted state) gets a new version only if a configured value differs from
        its active version; ``tuned`` keys are left as tuning (or a rollback) set them."""
        with self.lock:
            if name not in self._versions:
                v = ModelVersion(name, "1.0.0", dict(config), self.wall(), None, {},
                                 "initial", description)
                self._versions[name] = {v.version: v}
                return self._deploy(v)
            active = self.active(name)
            changes = {k: v for k, v in config.items()
                       if k not in active.config or (k not in tuned and active.config[k] != v)}
        if not changes:
            if self.on_change is not None:
                self.on_change(active)
            return active
        return self.update(name, changes, note="configuration changed")

    def update(self, name: str, changes: Mapping[str, Any], note: str = "") -> ModelVersion:
        """Apply configuration ``changes`` to the active version; a real change creates
        and deploys a new version (returned); no change returns the active one."""
        with self.lock:
            cur = self.active(name)
            new_config = {**cur.config, **changes}
            if new_config == cur.config:
                return cur
            latest = max(parse_version(v) for v in self._versions[name])
            if set(new_config) != set(cur.config):
                version = f"{latest[0] + 1}.0.0"
            else:
                version = f"{latest[0]}.{latest[1] + 1}.0"
            v = ModelVersion(name, version, new_config, self.wall(), None, {}, note,
                             cur.description)
            self._versions[name][version] = v
            return self._deploy(v)

    def rollback(self, name: str, version: str) -> ModelVersion:
        """Re-deploy an earlier ``version`` of ``name`` (its configuration is applied)."""
        with self.lock:
            v = self.get(name, version)
            return self._deploy(v)

    def set_metrics(self, name: str, metrics: Mapping[str, Any]) -> None:
        with self.lock:
            v = self.active(name)
            v.metrics.update(metrics)
            self.dirty.add((name, v.version))

    def _deploy(self, v: ModelVersion) -> ModelVersion:
        # Strictly increasing deployment times, so "most recent" is never a tie even
        # when a coarse or frozen clock is injected.
        now = self.wall()
        latest = max((x.deployed_at or 0.0 for x in self._versions[v.name].values()),
                     default=0.0)
        v.deployed_at = now if now > latest else latest + 1e-6
        self._active[v.name] = v.version
        self.dirty.add((v.name, v.version))
        if self.on_change is not None:
            self.on_change(v)
        return v

    # --- persistence ---------------------------------------------------------------

    def merge(self, rows: Mapping[str, Mapping[str, Any]]) -> list[ModelVersion]:
        """Absorb persisted versions (``"name@version" -> dict``). A version deployed
        later than the local active one becomes active (another worker tuned it, or the
        CLI rolled back). Returns the models whose active version changed."""
        changed: list[ModelVersion] = []
        reconfigured: set[str] = set()
        with self.lock:
            for raw in rows.values():
                try:
                    v = ModelVersion.from_dict(raw)
                except (KeyError, TypeError, ValueError):
                    continue
                known = self._versions.setdefault(v.name, {})
                mine = known.get(v.version)
                if mine is None:
                    known[v.version] = v
                elif (v.deployed_at or 0.0) > (mine.deployed_at or 0.0):
                    # Deployed later elsewhere. Two workers tuning at once can mint the
                    # same version number: the later deployment's configuration wins
                    # everywhere, so one version never means two configurations.
                    v.metrics = {**mine.metrics, **v.metrics}
                    known[v.version] = v
                    if v.config != mine.config:
                        reconfigured.add(v.name)
            for name, versions in self._versions.items():
                best = max(versions.values(), key=lambda x: x.deployed_at or 0.0)
                if self._active.get(name) != best.version or name in reconfigured:
                    self._active[name] = best.version
                    changed.append(best)
        for v in changed:
            if self.on_change is not None:
                self.on_change(v)
        return changed

    def rows(self, only_dirty: bool = False) -> dict[str, dict[str, Any]]:
        with self.lock:
            if only_dirty:
                keys = list(self.dirty)
                self.dirty.clear()
            else:
                keys = [(n, ver) for n, vs in self._versions.items() for ver in vs]
            return {f"{n}@{ver}": self._versions[n][ver].to_dict() for n, ver in keys
                    if n in self._versions and ver in self._versions[n]}
