"""From findings to fixes (issue 22): query advice, workload patterns, capacity advice.

Opt-in, all off the request path::

    from pulsegate.advisor import Advisor
    advisor = Advisor(gate, connect=lambda: psycopg.connect(DSN), dialect="postgresql")
    advisor.report()            # findings, patterns, capacity (also in `pulsegate report`)

* **Query advice** (only with ``connect``): the statements of every request are handed to
  a bounded inbox (one ``append`` per request); a scheduler job fingerprints them, takes
  the fingerprints costing the most time and asks the database for a generic plan on the
  advisor's own connection (:mod:`pulsegate.advisor.plans`, rules in
  :mod:`pulsegate.advisor.rules`).
* **Workload patterns** (:mod:`pulsegate.advisor.patterns`): sampled from the endpoint
  models' request counts and seasonal baselines every ``sample_interval`` seconds.
* **Capacity advice** (:mod:`pulsegate.advisor.capacity`): workers and replicas for the
  latency target at the observed peak, also as the Prometheus gauge
  ``pulsegate_recommended_workers`` when the Prometheus exporter is on.

Without the advisor nothing is registered: no listener, no job, no per-request cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulsegate.advisor.capacity import Advice, advise, service_mixture
from pulsegate.advisor.columns import ColumnReads
from pulsegate.advisor.patterns import Patterns
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.advisor.rules import Finding, Thresholds
from pulsegate.config_checks import ConfigError
from pulsegate.config_sections.advisor import AdvisorConfig

if TYPE_CHECKING:
    from pulsegate.context import RequestContext
    from pulsegate.plugins import Host
    from pulsegate.records import RequestRecord

__all__ = ["Advice", "Advisor", "Finding"]

_DIALECTS = ("postgresql", "postgres", "sqlite", "mysql", "mariadb")


class Advisor:
    """Query, workload and capacity advice for one gate (see the module docstring).

    The keywords are checked by the declarations of ``config.advice``
    (:mod:`pulsegate.config_sections.advisor`): a bad one is a ``ConfigError`` naming
    ``advisor_<keyword>``. With ``advisor=True`` in the configuration the gate builds one
    itself (:meth:`from_config`)."""

    def __init__(self, gate: Host, *, connect: Callable[[], Any] | None = None,
                 dialect: str | None = None, interval: float = 60.0,
                 sample_interval: float = 60.0, explains_per_minute: float = 6.0,
                 statement_timeout_ms: int = 250, top: int = 10,
                 recheck_seconds: float = 3600.0, min_table_rows: int = 1000,
                 in_list_min: int = 50, wide_columns: int = 12,
                 target_latency_ms: float | None = None, quantile: float = 0.99,
                 registry: Any = None) -> None:
        if connect is not None and not callable(connect):
            raise ConfigError("advisor connect", connect,
                              "a callable returning a new DB-API connection")
        if connect is not None and dialect not in _DIALECTS:
            raise ConfigError("advisor dialect", dialect, ", ".join(_DIALECTS))
        o = AdvisorConfig(
            advisor=True, advisor_interval=interval, advisor_sample_interval=sample_interval,
            advisor_explains_per_minute=explains_per_minute,
            advisor_statement_timeout_ms=statement_timeout_ms, advisor_top=top,
            advisor_recheck_seconds=recheck_seconds, advisor_min_table_rows=min_table_rows,
            advisor_in_list_min=in_list_min, advisor_wide_columns=wide_columns,
            advisor_target_latency_ms=target_latency_ms, advisor_quantile=quantile)
        self.interval = float(o.advisor_interval)
        self.sample_interval = float(o.advisor_sample_interval)
        self.quantile = float(o.advisor_quantile)
        self.target_ms = o.advisor_target_latency_ms
        self.gate = gate
        self.queries: QueryAdvisor | None = None
        if connect is not None and dialect is not None:
            from pulsegate.advisor.orm import column_trackers  # (imports no ORM itself)

            columns = ColumnReads(column_trackers(), clock=gate.clock)
            self.queries = QueryAdvisor(
                connect, dialect,
                explains_per_minute=o.advisor_explains_per_minute,
                timeout_ms=o.advisor_statement_timeout_ms, top=o.advisor_top,
                recheck_seconds=o.advisor_recheck_seconds,
                thresholds=Thresholds(o.advisor_min_table_rows, o.advisor_in_list_min,
                                      o.advisor_wide_columns),
                max_fingerprints=gate.config.queries.max_fingerprints, clock=gate.clock,
                columns=columns)
            gate.listeners.append(self._listen)
            gate.scheduler.every(1.0, columns.tick, "advisor-columns")
        self.patterns = Patterns(gate.config.model.max_endpoints)
        self.capacity: Advice | None = None
        self.gauge = self._gauge(registry)
        gate.scheduler.every(self.interval, self.run, "advisor")
        gate.scheduler.every(self.sample_interval, self.sample, "advisor-patterns")
        gate.plugs.add_state("advisor", self)
        gate.plugs.add_stats("advisor", self)
        gate.plugs.add_report("advisor", self.report)

    @classmethod
    def from_config(cls, gate: Host) -> Advisor:
        """The advisor ``gate.config.advice`` describes (the gate calls this when it is
        built with ``advisor`` on); ``advisor_database`` is turned into a connection
        factory here (:func:`pulsegate.advisor.orm.connection_for`): a bad alias or a missing
        driver is a ``ConfigError`` at start-up, the connection itself is made later,
        on the scheduler thread."""
        o = gate.config.advice
        where: dict[str, Any] = {}
        if o.advisor_database is not None:
            from pulsegate.advisor.orm import connection_for
            where = connection_for(o.advisor_database)
        return cls(gate, **where, interval=o.advisor_interval,
                   sample_interval=o.advisor_sample_interval,
                   explains_per_minute=o.advisor_explains_per_minute,
                   statement_timeout_ms=o.advisor_statement_timeout_ms, top=o.advisor_top,
                   recheck_seconds=o.advisor_recheck_seconds,
                   min_table_rows=o.advisor_min_table_rows, in_list_min=o.advisor_in_list_min,
                   wide_columns=o.advisor_wide_columns,
                   target_latency_ms=o.advisor_target_latency_ms,
                   quantile=o.advisor_quantile)

    def _listen(self, record: RequestRecord, ctx: RequestContext) -> None:
        queries = self.queries
        if queries is not None and ctx.query_count:
            queries.offer(record.endpoint, ctx.queries)

    def _gauge(self, registry: Any) -> Any:
        if not self.gate.config.export.prometheus:
            return None
        try:
            from pulsegate.export.prometheus import recommended_workers_gauge
            return recommended_workers_gauge(registry)
        except ImportError:
            return None

    # --- the scheduler's jobs ------------------------------------------------------------

    def sample(self) -> None:
        self.patterns.sample(self.gate.wall(), self.gate.baselines.items())

    def run(self) -> None:
        if self.queries is not None:
            self.queries.run()
        self.capacity = self.capacity_advice()
        if self.gauge is not None and self.capacity is not None \
                and self.capacity.workers is not None:
            self.gauge.set(self.capacity.workers)

    def capacity_advice(self) -> Advice | None:
        """Workers/replicas for the target at the observed peak (None: no traffic yet)."""
        peak = self.patterns.peak_rate()
        parts = []
        for _key, model in self.gate.baselines.items():
            if model.n:
                parts.append((float(model.n), float(model.level[0]), float(model.var[0])))
        if peak <= 0 or not parts:
            return None
        mean_s, cv2 = service_mixture(parts)
        limit = None
        control = self.gate.config.control
        target_ms = self.target_ms or control.target_latency_ms
        alloc = self.gate.plugs.states.get("allocator")
        if alloc is not None:
            st = alloc.state()
            limit = float(st.get("limit") or 0.0) or None
            if st.get("baseline"):
                mean_s = float(st["baseline"])  # in-service latency, learnt unqueued
        return advise(peak, mean_s, cv2, target_ms / 1000.0, self.quantile, limit)

    # --- what it shows -------------------------------------------------------------------

    def findings(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.queries.report(limit) if self.queries is not None else []

    def report(self, limit: int = 20) -> dict[str, Any]:
        return {"findings": self.findings(limit), "patterns": self.patterns.report(limit),
                "capacity": None if self.capacity is None else self.capacity.as_dict()}

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queries": self.queries.stats() if self.queries else None}
        if self.capacity is not None:
            out["recommended_workers"] = self.capacity.workers
            out["recommended_replicas"] = self.capacity.replicas
        return out

    def state(self) -> dict[str, Any]:
        """Persisted with each snapshot: the CLI's ``report`` reads it back."""
        return {"version": 1, "report": self.report(), "patterns": self.patterns.state()}

    def load_state(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("unknown advisor state version")
        self.patterns.load_state(data["patterns"])

    def close(self) -> None:
        if self.queries is not None:
            self.queries.close()
            if self.queries.columns is not None:
                self.queries.columns.close()
