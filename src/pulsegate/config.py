"""One frozen ``Config`` holding every option, with its default, its check and its doc.

A ``Config`` is built from keyword arguments, a mapping (Django's ``PULSEGATE`` dict,
Flask's ``PULSEGATE_*`` keys) or the environment (``PULSEGATE_<KEY>``). Every value is
validated when the object is built, so a bad option fails at start-up with a
``ConfigError`` naming the key, the value and what is allowed -- never mid-request.

Each option is declared once with :func:`option`; ``docs/configuration.md`` is checked
against these declarations by the test-suite, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pulsegate.autoinstrument import sqlalchemy_setting
from pulsegate.config_checks import (
    MAX_BURST,
    Check,
    ConfigError,
    _bool,
    _cidrs,
    _client_key,
    _forwarded_header,
    _grid,
    _header_or_none,
    _http_url,
    _priorities,
    _rate,
    _route_costs,
    _route_rates,
    _state_redis_url,
    _storage_url,
    callable_or_none,
    choice,
    mapping,
    number,
    paths,
    text,
    unknown_option,
    url_path,
)

__all__ = ["Check", "Config", "ConfigError", "option"]


def option(default: Any, doc: str, check: Check | None = None, *, factory: bool = False) -> Any:
    """Declare one option. ``check(key, value)`` returns the normalised value or raises."""
    meta = {"doc": doc, "check": check}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


# Upper bounds: every number is finite and bounded (issue 18), so no option can overflow
# an arithmetic or turn a wait into forever. Generous: far beyond any sane setting.
MILLION = 1_000_000
HOUR_MS = 3_600_000
DAY_S = 86_400
WEEK_S = 7 * DAY_S
YEAR_S = 365 * DAY_S


# --- the options ---------------------------------------------------------------------
# Grouped by the package that reads them. Each group is owned by that package; add new
# options to the group, with a doc line, and list them in docs/configuration.md.


@dataclass(frozen=True)
class Config:
    """Every pulsegate option. Build with ``Config(**kwargs)``, :meth:`from_mapping` or
    :meth:`from_env`; all values are validated in ``__post_init__``."""

    # core ---------------------------------------------------------------------------
    enabled: bool = option(True, "Master switch. When false the middleware is a pass-through.", _bool)
    headers: str = option("all", "Which x-ml-* response headers to expose: all | safe | none. "
                          "`safe` sends only x-ml-optimization-applied and x-ml-model-version.",
                          choice("all", "safe", "none"))
    exclude_paths: tuple[str, ...] = option(
        ("/health", "/healthz", "/livez", "/readyz"),
        "URL paths (exact, or as a /-segment prefix) skipped before any measuring.", paths)
    max_endpoints: int = option(1000, "Cap on per-endpoint models; beyond it a least "
                                "recently used endpoint is forgotten (CLOCK approximation "
                                "of LRU).", number(1, MILLION, integer=True))
    measure_cpu: bool = option(True, "Record the CPU time of sampled requests (thread CPU "
                               "clock).", _bool)
    cpu_sample_every: int = option(4, "Measure CPU time on one request in N at most (the "
                                   "thread CPU clock is a system call, ~0.3-0.7 µs per "
                                   "read).", number(1, MILLION, integer=True))
    cpu_sample_budget_us: float = option(
        0.1, "Average cost per request the CPU samples may have, in µs: each read of the "
        "thread CPU clock is timed, and the interval is stretched past cpu_sample_every "
        "where the system call is dear (virtual machines, sandboxes). 0 keeps the "
        "interval fixed.", number(0, MILLION))
    measure_memory: bool = option(True, "Record the net allocated interpreter blocks "
                                  "(sys.getallocatedblocks delta) of sampled requests.", _bool)
    memory_sample_every: int = option(64, "Measure memory on one request in N at most (the "
                                      "block count walks every allocator pool: ~1 µs per read "
                                      "in a small process, ~10 µs at 30 MB of objects, more "
                                      "beyond).", number(1, MILLION, integer=True))
    memory_sample_budget_us: float = option(
        0.25, "Average cost per request the memory samples may have, in µs: each sample "
        "is timed, and the interval is stretched past memory_sample_every when the heap "
        "makes a read dearer. 0 keeps the interval fixed.", number(0, MILLION))
    state_dir: str | None = option(None, "Directory for persisted state (SQLite). None keeps "
                                   "everything in memory.", text(optional=True))
    instrument_sqlalchemy: bool | tuple[Any, ...] = option(
        True, "Which SQLAlchemy engines the middleware instruments when it is built: true "
        "-- every engine, existing and future (when SQLAlchemy is installed); false -- none "
        "(call pulsegate.sqlalchemy.instrument(engine) yourself); or a list of engines.",
        sqlalchemy_setting)

    # learn: the online per-endpoint model ------------------------------------------------
    alpha: float = option(0.3, "Exponential-smoothing factor of the forecast, in (0, 1].",
                          number(0, 1, lo_open=True))
    z_threshold: float = option(3.0, "|z| above which a metric counts as anomalous.",
                                number(0, 1000, lo_open=True))
    warmup: int = option(30, "Samples an endpoint must see before it may flag anything.",
                         number(1, MILLION, integer=True))
    prediction_threshold: float = option(
        0.7, "Minimum confidence (0-1) for a prediction to drive an action such as shedding "
        "or a trust multiplier.", number(0, 1))
    performance_prediction: bool = option(True, "Forecast latency per endpoint "
                                          "(x-ml-predicted-latency-ms).", _bool)
    anomaly_detection: bool = option(True, "Score each request against its endpoint's "
                                     "baseline (x-ml-anomaly-score).", _bool)
    retention: float = option(3600.0, "Seconds of recent records and detections kept for "
                              "reports and the dashboard.", number(1, YEAR_S))
    aggregation_window: float = option(60.0, "Seconds per aggregation bucket of the "
                                       "per-endpoint time series.", number(1, DAY_S))
    max_recent: int = option(1000, "Cap on recent anomalies/detections kept in memory.",
                             number(1, MILLION, integer=True))
    seasonality: str = option("auto", "Seasonal baselines of the incident series: auto "
                              "(hour-of-day / hour-of-week profiles switched on once enough "
                              "history exists and they explain the spread) | daily | weekly "
                              "| off.", choice("auto", "daily", "weekly", "off"))
    multivariate: bool = option(False, "Train an IsolationForest per endpoint group on a "
                                "reservoir of request feature vectors in the background "
                                "(needs pulsegate[ml]) and blend its score into incidents.",
                                _bool)
    multivariate_interval: float = option(300.0, "Seconds between background trainings and "
                                          "assessments of the multivariate model.",
                                          number(1, WEEK_S))
    multivariate_sample_size: int = option(2048, "Reservoir size (feature vectors kept) per "
                                           "endpoint group for the multivariate model.",
                                           number(16, 100_000, integer=True))
    multivariate_contamination: float = option(0.01, "IsolationForest contamination: the "
                                               "share of training vectors treated as outliers.",
                                               number(0, 0.5, lo_open=True))
    multivariate_weight: float = option(0.5, "Weight w of the multivariate score in the "
                                        "weighted noisy-OR blend with the univariate one: 0 "
                                        "univariate only, 1 multivariate only, 0.5 either "
                                        "can alarm.", number(0, 1))

    # queries: SQL instrumentation and N+1 detection --------------------------------------
    query_analysis: bool = option(True, "Record SQL statements per request and detect N+1, "
                                  "repeated queries and write loops.", _bool)
    nplusone_min_repeats: int = option(5, "Statements of one shape from one call site (or "
                                       "relationship) that make an N+1.",
                                       number(2, MILLION, integer=True))
    nplusone_min_duration_ms: float = option(0.0, "Minimum total time (ms) of a group before "
                                             "it is reported; 0 reports fast N+1s too.",
                                             number(0, HOUR_MS))
    repeated_query_min: int = option(5, "Runs of the identical statement (same parameters) "
                                     "that make a repeated_query.", number(2, MILLION, integer=True))
    write_loop_min: int = option(5, "Single-row INSERT/UPDATE/DELETE of one shape that make "
                                 "a write_loop.", number(2, MILLION, integer=True))
    max_queries_per_request: int = option(10_000, "Statements kept per request for analysis "
                                          "(all are counted).", number(1, MILLION, integer=True))
    query_log_interval: float = option(300.0, "Seconds between two log lines for the same "
                                       "(endpoint, fingerprint) detection.", number(0, WEEK_S))
    fingerprint_cache_size: int = option(4096, "LRU size of the SQL fingerprint cache (keyed "
                                         "by raw statement text).", number(1, MILLION, integer=True))
    capture_call_sites: bool = option(True, "Record the application call site of each "
                                      "statement (a cheap frame walk).", _bool)
    max_fingerprints: int = option(1000, "LRU cap on per-fingerprint query insights kept "
                                   "across requests.", number(1, MILLION, integer=True))

    # control: rate limiting and concurrency allocation -----------------------------------
    rate_limiting: bool = option(False, "Enable the adaptive per-client rate limiter.", _bool)
    resource_allocation: bool = option(False, "Enable the Q-learning concurrency allocator "
                                       "(admission control and load shedding).", _bool)
    target_latency_ms: float = option(200.0, "Latency target the allocator protects.",
                                      number(0, HOUR_MS, lo_open=True))
    auto_target_latency: bool = option(False, "Let the allocator steer to twice the "
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
    trusted_multiplier: float = option(2.0, "Rate multiplier for clients with a long clean "
                                       "history.", number(1, 1000))
    suspicious_multiplier: float = option(0.5, "Rate multiplier for clients whose suspicion "
                                          "score passes suspicion_threshold.",
                                          number(0, 1, lo_open=True))
    suspicion_threshold: float = option(0.5, "Suspicion score (0-1) from which a client is "
                                        "treated as suspicious.", number(0, 1, lo_open=True))
    max_clients: int = option(10000, "LRU cap on per-client behaviour profiles.",
                              number(1, 10 * MILLION, integer=True))
    breaker_failures: int = option(5, "Consecutive Redis failures that open the circuit "
                                   "breaker (checks then use local buckets).",
                                   number(1, MILLION, integer=True))
    breaker_recovery: float = option(60.0, "Seconds the breaker stays open before one trial "
                                     "call to Redis.", number(0, DAY_S, lo_open=True))
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
    behaviour_forest: bool = option(False, "Also score clients with a scikit-learn "
                                    "IsolationForest trained in the background (ml extra).",
                                    _bool)

    # registry and export -------------------------------------------------------------------
    # registry (persistence, feedback, tuning, alerts):
    state_redis_url: str | None = option(None, "Redis URL holding persisted state shared by "
                                         "workers/hosts (fleet baselines); overrides state_dir.",
                                         _state_redis_url)
    state_namespace: str = option("pulsegate", "Key prefix (Redis) of persisted state.",
                                 text(max_len=256))
    snapshot_interval: float = option(60.0, "Seconds between state snapshots (also taken at "
                                      "close/exit).", number(1, DAY_S))
    state_ttl: float = option(86400.0, "Seconds after which a silent worker's persisted "
                              "statistics are dropped from the fleet baseline.", number(60, YEAR_S))
    monitoring_interval: float = option(300.0, "Seconds between model accuracy checks.",
                                        number(1, WEEK_S))
    degradation_interval: float = option(900.0, "Seconds between model degradation checks.",
                                         number(1, WEEK_S))
    tuning_interval: float = option(3600.0, "Seconds between threshold auto-tuning runs.",
                                    number(1, WEEK_S))
    cleanup_interval: float = option(86400.0, "Seconds between clean-ups of persisted state.",
                                     number(1, WEEK_S))
    auto_tuning: bool = option(True, "Tune model thresholds from labelled feedback.", _bool)
    tuning_min_labels: int = option(50, "Labels in the window needed before tuning.",
                                    number(1, MILLION, integer=True))
    tuning_min_improvement: float = option(0.05, "Relative F1 gain a new threshold must bring "
                                           "to be applied.", number(0, 100))
    tuning_window: float = option(86400.0, "Seconds of labelled feedback tuning looks at.",
                                  number(1, YEAR_S))
    tuning_grid: tuple[float, float, float] = option((0.5, 0.9, 0.05), "Threshold grid searched by "
                                          "tuning: low, high, step.", _grid)
    accuracy_target: float = option(0.8, "Accuracy (last 100 labels) under which a model "
                                    "raises an alert.", number(0, 1))
    accuracy_targets: Mapping[str, Any] = option(dict, "Per-model accuracy targets overriding "
                                                 "accuracy_target, e.g. {\"n1-detector\": 0.95}.",
                                                 mapping(number(0, 1), "a mapping of model name -> a "
                                                         "number >= 0 and <= 1"), factory=True)
    monitor_min_labels: int = option(20, "Labels a model needs before accuracy/degradation "
                                     "alerts.", number(1, MILLION, integer=True))
    degradation_threshold: float = option(0.05, "Relative drop of F1 against the version's "
                                          "baseline that raises an alert.", number(0, 1))
    alert_callback: Callable[[Any], object] | None = option(  # noqa: RUF009
        None, "Callable receiving each Alert (scheduler thread).", callable_or_none)
    alert_webhook: str | None = option(None, "http(s) URL receiving each alert as a JSON POST "
                                       "(scheduler thread).", _http_url)
    alert_critical_score: float = option(0.9, "Anomaly score at or above which a request "
                                         "raises a critical alert.", number(0, 1))
    alert_cooldown: float = option(300.0, "Seconds during which a repeat of the same alert is "
                                   "suppressed.", number(0, WEEK_S))
    max_predictions: int = option(10000, "Cap on recent predictions kept for feedback by id.",
                                  number(10, 10 * MILLION, integer=True))
    max_labels: int = option(10000, "Labels kept per model for windows and tuning.",
                             number(1000, 10 * MILLION, integer=True))
    # export (OpenTelemetry, Prometheus, logs, dashboard):
    otel: bool = option(False, "Add pulsegate.* attributes and detection events to the active "
                        "OpenTelemetry span and record OTel metrics (needs opentelemetry-api).",
                        _bool)
    prometheus: bool = option(False, "Record pulsegate's metrics with prometheus-client "
                              "(default registry).", _bool)
    prometheus_path: str | None = option(
        "/_pulsegate/metrics", "Path where the middleware serves the Prometheus metrics when "
        "`prometheus` is on; none: only register them in the client's registry.",
        url_path(optional=True))
    log_events: bool = option(True, "Log anomalies and incidents as structured records "
                              "(logger pulsegate.anomalies, `extra` fields), from the "
                              "background thread.", _bool)
    dashboard: bool = option(False, "Serve the dashboard and its JSON API (needs "
                             "dashboard_token or dashboard_allow_loopback).", _bool)
    dashboard_path: str = option("/_pulsegate", "URL path of the dashboard page; its JSON "
                                 "API is under <path>/api/.", url_path())
    dashboard_token: str | None = option(None, "Secret the dashboard requires (Authorization: "
                                         "Bearer, or ?token= for the page); compared in "
                                         "constant time.", text(optional=True))
    dashboard_allow_loopback: bool = option(False, "Let loopback peers (127.0.0.1, ::1) "
                                            "without a token in. Never behind a proxy on "
                                            "the same host.", _bool)
    dashboard_points: int = option(120, "Aggregation windows kept per endpoint for the "
                                   "dashboard's charts (ring buffer).", number(2, 10000, integer=True))

    # ------------------------------------------------------------------------------------
    extra: Mapping[str, Any] = option(dict, "Free-form settings for integrations; not "
                                      "validated.", mapping(allowed="a mapping (values not checked)"),
                                      factory=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))
        if self.min_concurrency > self.max_concurrency:
            raise ConfigError("min_concurrency", self.min_concurrency,
                              f"<= max_concurrency ({self.max_concurrency})")

    # --- constructors -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, prefix: str = "") -> Config:
        """Build from a mapping; keys may carry ``prefix`` (e.g. ``PULSEGATE_``) and any case.

        Unknown keys raise ``ConfigError`` (with the nearest option, spelt like the key)
        so a typo never silently does nothing."""
        known = _option_names()
        kwargs: dict[str, Any] = {}
        for raw_key, value in values.items():
            if not isinstance(raw_key, str):
                raise unknown_option(repr(raw_key), value, ())
            has_prefix = bool(prefix) and raw_key.upper().startswith(prefix.upper())
            key = (raw_key[len(prefix):] if has_prefix else raw_key).lower()
            if key not in known:
                head = raw_key[:len(prefix)] if has_prefix else ""
                upper = raw_key.isupper()
                raise unknown_option(raw_key, value, (
                    head + (name.upper() if upper else name) for name in known))
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from ``PULSEGATE_*`` environment variables, then apply ``overrides``."""
        values: dict[str, Any] = cls.env_options(environ)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def env_options(cls, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``option -> raw value`` of the ``PULSEGATE_*`` environment variables (checked
        when a Config is built from them); an unknown ``PULSEGATE_*`` name raises."""
        env = os.environ if environ is None else environ
        known = _option_names()
        values: dict[str, str] = {}
        for name, value in env.items():
            if name.startswith("PULSEGATE_"):
                key = name[len("PULSEGATE_"):].lower()
                if key in known:
                    values[key] = value
                elif key not in _ENV_IGNORED:
                    raise unknown_option(name, value, ("PULSEGATE_" + n.upper() for n in known))
        return values

    def replace(self, **changes: Any) -> Config:
        _refuse_unknown(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def options(cls) -> list[tuple[str, Any, str]]:
        """(name, default, doc) for every option, in declaration order."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
            out.append((f.name, default, str(f.metadata.get("doc", ""))))
        return out


# Environment variables with this prefix that are not options (read elsewhere).
_ENV_IGNORED = {"install_services"}


def _option_names() -> dict[str, None]:
    """Every option name, in declaration order (a dict: ordered, O(1) membership)."""
    return dict.fromkeys(f.name for f in fields(Config))


def _refuse_unknown(values: Mapping[str, Any]) -> None:
    known = _option_names()
    for key, value in values.items():
        if key not in known:
            raise unknown_option(key, value, known)


# Keyword arguments reach Config from every entry point (``PulseGate(z_treshold=2)``,
# ``app.add_middleware(PulseGateMiddleware, ...)``, the Flask extension's defaults): an
# unknown one is a ConfigError with a suggestion there too, not the dataclass's bare
# TypeError. The generated __init__ stays the signature type checkers and help() see.
_generated_init = Config.__init__


@functools.wraps(_generated_init)
def _checked_init(self: Config, *args: Any, **kwargs: Any) -> None:
    _refuse_unknown(kwargs)
    _generated_init(self, *args, **kwargs)


Config.__init__ = _checked_init  # type: ignore[method-assign]
