"""The persistence section (``config.persistence``): where state is persisted (SQLite
directory or Redis), how often it is snapshotted, and when a silent worker's state is
dropped. Read by ``registry/`` (the store and its jobs) and the management commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pulsegate.config_checks import _state_redis_url, number, text
from pulsegate.config_sections.base import (
    DAY_S,
    WEEK_S,
    YEAR_S,
    Section,
    option,
    refuse_unknown_keywords,
)


@refuse_unknown_keywords("an option of config.persistence (docs/configuration.md)")
@dataclass(frozen=True)
class PersistenceConfig(Section):
    """Where and how often state is persisted."""

    NAME: ClassVar[str] = "persistence"

    state_dir: str | None = option(None, "Directory for persisted state (SQLite). None keeps "
                                   "everything in memory.", text(optional=True))
    state_redis_url: str | None = option(None, "Redis URL holding persisted state shared by "
                                         "workers/hosts (fleet baselines); overrides state_dir.",
                                         _state_redis_url)
    state_namespace: str = option("pulsegate", "Key prefix (Redis) of persisted state.",
                                 text(max_len=256))
    snapshot_interval: float = option(60.0, "Seconds between state snapshots (also taken at "
                                      "close/exit).", number(1, DAY_S))
    state_ttl: float = option(86400.0, "Seconds after which a silent worker's persisted "
                              "statistics are dropped from the fleet baseline.", number(60, YEAR_S))
    cleanup_interval: float = option(86400.0, "Seconds between clean-ups of persisted state.",
                                     number(1, WEEK_S))
