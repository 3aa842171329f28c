"""The control section (``config.control``): the adaptive per-client rate limiter
(rates, client identity, trust and suspicion, the Redis storage and its breaker) and
the Q-learning concurrency allocator (target, bounds, queue, priorities). Read by
``control/`` (the engine's Controller builds the limiter and the allocator from it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pulsegate.config_checks import ConfigError, _bool, number
from pulsegate.config_sections.base import (
    DAY_S,
    HOUR_MS,
    MILLION,
    YEAR_S,
    Section,
    option,
    refuse_unknown_keywords,
)
from pulsegate.config_sections.control_checks import (
    MAX_BURST,
    _cidrs,
    _client_key,
    _forwarded_header,
    _header_or_none,
    _healing_actions,
    _priorities,
    _rate,
    _route_costs,
    _route_rates,
    _storage_url,
)


@refuse_unknown_keywords("an option of config.control (docs/configuration.md)")
@dataclass(frozen=True)
class ControlConfig(Section):
    """Rate limiting and admission control."""

    NAME: ClassVar[str] = "control"

    rate_limiting: bool = option(False, "Enable the adaptive per-client rate limiter.", _bool)
    resource_allocation: bool = option(False, "Enable the Q-learning concurrency allocator "
                                       "(admission control and load shedding).", _bool)
    # the rate limiter ------------------------------------------------------------------
    rate_limit: str = option("100/minute", "Nominal per-client rate: 'N/second|minute|hour|day' "
                             "or 'N per K seconds'.", _rate)
    rate_limit_burst: float | None = option(None, "Token-bucket depth (requests a client may "
                                            "send at once); none: the quota of rate_limit.",
                                            number(1, MAX_BURST, optional=True))
    rate_limit_routes: Mapping[str, str] = option(dict, "Per-route rates: route template -> "
                                                  "'N/unit' or 'N/unit;burst', own bucket.",
                                                  _route_rates, factory=True)
    rate_limit_costs: Mapping[str, float] = option(dict, "Tokens one request to a route "
                                                   "costs (default 1).", _route_costs,
                                                   factory=True)
    rate_limit_storage: str = option("memory://", "Bucket storage: memory:// (per process) or "
                                     "redis://host:port/db (shared, atomic Lua).", _storage_url)
    client_key: str | Callable[[Any], str | None] = option(  # noqa: RUF009
        "ip", "Client identity: 'ip', 'header:<name>' (e.g. an API key) or a "
        "callable(RequestInfo) -> str.", _client_key)
    trusted_proxies: tuple[str, ...] = option((), "CIDRs of proxies whose forwarding "
                                              "header (forwarded_header) is believed.", _cidrs)
    forwarded_header: tuple[str, ...] = option(
        ("x-forwarded-for",), "What the trusted proxies write: x-forwarded-for | forwarded | "
        "x-real-ip | cf-connecting-ip | true-client-ip, or a list in hop order (outermost "
        "first). Other forwarding headers are never read.", _forwarded_header)
    max_clients: int = option(10000, "LRU cap on per-client behaviour profiles.",
                              number(1, 10 * MILLION, integer=True))
    breaker_failures: int = option(5, "Consecutive Redis failures that open the circuit "
                                   "breaker (checks then use local buckets).",
                                   number(1, MILLION, integer=True))
    breaker_recovery: float = option(60.0, "Seconds the breaker stays open before one trial "
                                     "call to Redis.", number(0, DAY_S, lo_open=True))
    # trust and suspicion ------------------------------------------------------------
    trusted_multiplier: float = option(2.0, "Rate multiplier for clients with a long clean "
                                       "history.", number(1, 1000))
    suspicious_multiplier: float = option(0.5, "Rate multiplier for clients whose suspicion "
                                          "score passes suspicion_threshold.",
                                          number(0, 1, lo_open=True))
    suspicion_threshold: float = option(0.5, "Suspicion score (0-1) from which a client is "
                                        "treated as suspicious.", number(0, 1, lo_open=True))
    prediction_threshold: float = option(
        0.7, "Minimum confidence (0-1) of a client's behaviour profile before it changes "
        "the client's multiplier (trusted or suspicious).", number(0, 1))
    trust_min_requests: int = option(30, "Requests a client must have sent before it may "
                                     "earn trusted_multiplier.", number(1, MILLION, integer=True))
    trust_min_seconds: float | None = option(
        None, "Seconds without an abrupt change of rate, paths or errors a client needs "
        "before it earns trusted_multiplier again; none: two windows of rate_limit.",
        number(0, YEAR_S, optional=True))
    trust_shift_rate: float = option(
        4.0, "Abrupt rate change: evidence (in the client's own rate spreads x window/6) "
        "that its rate rose above its habit, at which it loses trust; the fast test for "
        "large steps alarms at twice it (log-likelihood, nats).", number(1, 1000))
    auth_failures_allowed: int = option(
        5, "Consecutive 401/403 answers a client may get before each further request "
        "waits, doubling from min(window, 60 s); 0: no backoff.",
        number(0, MILLION, integer=True))
    behaviour_forest: bool = option(False, "Also score clients with a scikit-learn "
                                    "IsolationForest trained in the background (ml extra).",
                                    _bool)
    # the concurrency allocator ---------------------------------------------------------
    target_latency_ms: float = option(200.0, "Latency target the allocator protects.",
                                      number(0, HOUR_MS, lo_open=True))
    # On by default: configured with the SLO it keeps more goodput than a fixed target
    # in every allocator_sim.py family and seed (docs/control.md, "Auto target").
    auto_target_latency: bool = option(True, "Let the allocator steer to 1.5x the "
                                       "latency it measures without queueing, at most "
                                       "target_latency_ms.", _bool)
    max_memory_mb: float | None = option(None, "Process memory (RSS, MiB) treated as "
                                         "full pressure by the allocator; none: ignore.",
                                         number(0, 1000 * MILLION, lo_open=True, optional=True))
    cpu_threshold: float = option(0.8, "Process CPU utilisation (0-1) treated as high "
                                  "pressure by the allocator.", number(0, 1, lo_open=True))
    throughput_target: float | None = option(None, "Requests per second the allocator aims "
                                             "to sustain; none: as many as meet the "
                                             "latency target.",
                                             number(0, 1000 * MILLION, lo_open=True, optional=True))
    min_concurrency: int = option(4, "Lower bound of the learned concurrency limit.",
                                  number(1, 100_000, integer=True))
    max_concurrency: int = option(256, "Upper bound of the learned concurrency limit.",
                                  number(1, 100_000, integer=True))
    initial_concurrency: int | None = option(None, "Starting limit; none: 20 clamped to the "
                                             "bounds.", number(1, 100_000, integer=True, optional=True))
    max_queue: int = option(100, "Requests that may wait for a slot; beyond it the lowest "
                            "priority is shed.", number(0, MILLION, integer=True))
    max_queue_wait: float = option(0.05, "Seconds a request may wait for a slot before it "
                                   "is shed (503).", number(0, 3600))
    priority_rules: Mapping[str, str] = option(dict, "Route template (or '/prefix*') -> "
                                               "high | normal | low.", _priorities,
                                               factory=True)
    priority_header: str | None = option(None, "Request header carrying a priority, trusted "
                                         "only when set (e.g. set by your gateway).",
                                         _header_or_none)
    allocator_interval: float | None = option(None, "Seconds per allocator control window; "
                                              "none: 5x target latency in [0.05, 1].",
                                              number(0, 3600, lo_open=True, optional=True))
    q_alpha: float = option(0.1, "Q-learning rate.", number(0, 1, lo_open=True))
    q_gamma: float = option(0.9, "Q-learning discount factor.", number(0, 1))
    q_epsilon: float = option(0.05, "Initial exploration probability (epsilon-greedy).",
                              number(0, 1))
    q_epsilon_decay: float = option(0.995, "Per-window multiplicative epsilon decay.",
                                    number(0, 1, lo_open=True))

    healing_actions: tuple[Any, ...] = option((), "Actions a critical incident switches on "
                                              "for healing_seconds: shed a priority class, "
                                              "degrade or tighten an endpoint, call a "
                                              "function (docs/control.md); empty: none.",
                                              _healing_actions)
    healing_seconds: float = option(300.0, "Seconds a healing action stays on after the "
                                    "last incident that triggered it.", number(1, DAY_S))
    healing_max_per_hour: int = option(4, "Healing actions switched on in any hour, at "
                                       "most (re-arming one already on does not count).",
                                       number(1, 1000, integer=True))

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(a.do == "tighten" for a in self.healing_actions) and not self.rate_limiting:
            raise ConfigError("healing_actions", [a.do for a in self.healing_actions],
                              "'tighten' only with rate_limiting on")
        if self.min_concurrency > self.max_concurrency:
            raise ConfigError("min_concurrency", self.min_concurrency,
                              f"<= max_concurrency ({self.max_concurrency})")
