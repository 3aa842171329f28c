"""Cache and outbound figures for Prometheus and OpenTelemetry, read from the gate's
monitors when the metrics are collected (a scrape, an OTel reader's collection): no
work is added to a cache call or an outbound call for them.

==================================  ==================================  ===============================
Prometheus                          OpenTelemetry                       labels / attributes
==================================  ==================================  ===============================
``pulsegate_cache_operations_total``  ``pulsegate.cache.operations``  ``cache``, ``pattern``, ``result``
``pulsegate_upstream_calls_total``  ``pulsegate.upstream.calls``        ``upstream``, ``outcome``
``pulsegate_upstream_health``       ``pulsegate.upstream.health``       ``upstream``
==================================  ==================================  ===============================

``result`` is ``hit``, ``miss``, ``set``, ``delete`` or ``error``; ``outcome`` is
``success``, ``failure`` (5xx), ``error`` or ``timeout``. Label values are bounded by
configuration (patterns: ``cache_max_patterns``; upstreams: a fifth of
``max_endpoints``) and hold no raw key and no URL beyond ``scheme://host[:port]``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.plugins import Host

__all__ = ["cache_samples", "install", "register_otel", "upstream_samples"]

_LOCK = threading.Lock()
#: gate -> [cache monitor, outbound monitor, broker queues] (None: not attached), read
#: at collection
_SOURCES: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_PROM_REGISTRIES: set[int] = set()
_OTEL_GATES: weakref.WeakSet[Any] = weakref.WeakSet()


def _sources(gate: Any = None) -> list[list[Any]]:
    if gate is not None:
        found = _SOURCES.get(gate)
        return [found] if found is not None else []
    return list(_SOURCES.values())


def cache_samples(gate: Any = None) -> Iterator[tuple[dict[str, str], float]]:
    """``(labels, cumulative count)`` of every cache pattern (of ``gate``, or of every
    gate)."""
    for caches, *_ in _sources(gate):
        if caches is None:
            continue
        for s in caches.patterns():
            for result, value in (("hit", s.hits), ("miss", s.misses), ("set", s.sets),
                                  ("delete", s.deletes), ("error", s.errors)):
                if value:
                    yield {"cache": s.cache, "pattern": s.pattern, "result": result}, value


def upstream_samples(gate: Any = None) -> Iterator[tuple[str, dict[str, str], float]]:
    """``("calls" | "health", labels, value)`` of every upstream (of ``gate``, or of
    every gate)."""
    for _, outbound, *_ in _sources(gate):
        if outbound is None:
            continue
        for row in outbound.rows():
            upstream = row["upstream"]
            failures, errors, timeouts = row["failures"], row["errors"], row["timeouts"]
            for outcome, value in (("success", row["calls"] - failures - errors - timeouts),
                                   ("failure", failures), ("error", errors),
                                   ("timeout", timeouts)):
                if value:
                    yield "calls", {"upstream": upstream, "outcome": outcome}, value
            if row["health"] is not None:
                yield "health", {"upstream": upstream}, row["health"]


def queue_samples(gate: Any = None) -> Iterator[tuple[str, dict[str, str], float]]:
    """``("length" | "head_age" | "stalled", labels, value)`` of every watched broker
    queue (:mod:`pulsegate.jobs.broker`; of ``gate``, or of every gate)."""
    for *_, brokers in _sources(gate):
        for broker in list(brokers or ()):
            for queue, row in broker.stats().items():
                labels = {"queue": queue}
                if row["sampled_at"] is None:
                    continue
                yield "length", labels, float(row["length"])
                yield "head_age", labels, float(row["head_age_s"] or 0.0)
                yield "stalled", labels, 1.0 if row["stalled"] else 0.0


class _PrometheusCollector:
    """A prometheus-client custom collector over the monitors."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ops = CounterMetricFamily("pulsegate_cache_operations", "Cache operations per cache, "
                                  "key pattern and result.", labels=("cache", "pattern", "result"))
        for labels, value in cache_samples():
            ops.add_metric([labels["cache"], labels["pattern"], labels["result"]], value)
        calls = CounterMetricFamily("pulsegate_upstream_calls", "Outbound HTTP calls per "
                                    "upstream and outcome.", labels=("upstream", "outcome"))
        health = GaugeMetricFamily("pulsegate_upstream_health", "Health score of each "
                                   "upstream (0-1; docs/outbound.md).", labels=("upstream",))
        for kind, labels, value in upstream_samples():
            if kind == "calls":
                calls.add_metric([labels["upstream"], labels["outcome"]], value)
            else:
                health.add_metric([labels["upstream"]], value)
        gauges = {
            "length": GaugeMetricFamily("pulsegate_queue_length", "Messages waiting in a "
                                        "watched broker queue (Redis LLEN).", labels=("queue",)),
            "head_age": GaugeMetricFamily("pulsegate_queue_head_age_seconds", "How long the "
                                          "oldest message of a watched queue has been there.",
                                          labels=("queue",)),
            "stalled": GaugeMetricFamily("pulsegate_queue_stalled", "1 while a watched queue's "
                                         "oldest message has not moved past its line "
                                         "(docs/jobs.md).", labels=("queue",))}
        for kind, labels, value in queue_samples():
            gauges[kind].add_metric([labels["queue"]], value)
        yield from (ops, calls, health, *gauges.values())


def _observe(gate: Any, kind: str) -> Any:
    ref = weakref.ref(gate)

    def callback(options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        g = ref()
        if g is None:
            return []
        if kind == "cache":
            return [Observation(v, attributes=a) for a, v in cache_samples(g)]
        return [Observation(v, attributes=a) for k, a, v in upstream_samples(g) if k == kind]

    return callback


def install(gate: Host, caches: Any = None, outbound: Any = None, queues: Any = None) -> None:
    """Report ``gate``'s cache monitor, outbound monitor or watched broker queues (a
    list of :class:`~pulsegate.jobs.broker.BrokerQueues`) to the exporters its
    configuration turns on (``prometheus``, ``otel``). Idempotent per gate; a missing
    optional package is counted in the gate's faults, never raised."""
    with _LOCK:
        sources = _SOURCES.setdefault(gate, [None, None, None])
        if caches is not None:
            sources[0] = caches
        if outbound is not None:
            sources[1] = outbound
        if queues is not None:
            sources[2] = queues
    c = gate.config.export
    if c.prometheus:
        try:
            import prometheus_client

            registry = prometheus_client.REGISTRY
            with _LOCK:
                if id(registry) not in _PROM_REGISTRIES:
                    registry.register(_PrometheusCollector())  # type: ignore[arg-type]
                    _PROM_REGISTRIES.add(id(registry))
        except Exception as exc:
            gate.faults.record("export io prometheus", exc)
    if c.otel:
        with _LOCK:
            if gate in _OTEL_GATES:
                return
            _OTEL_GATES.add(gate)
        try:
            register_otel(gate)
        except Exception as exc:
            gate.faults.record("export io otel", exc)


def register_otel(gate: Host, meter_provider: Any = None) -> None:
    """The three OpenTelemetry instruments of ``gate``'s monitors, on ``meter_provider``
    (default: the global one); their callbacks read the monitors at each collection."""
    from opentelemetry import metrics

    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("pulsegate.io")
    meter.create_observable_counter(
        "pulsegate.cache.operations", callbacks=[_observe(gate, "cache")],
        unit="{operation}", description="Cache operations per cache, key pattern and result.")
    meter.create_observable_counter(
        "pulsegate.upstream.calls", callbacks=[_observe(gate, "calls")], unit="{call}",
        description="Outbound HTTP calls per upstream and outcome.")
    meter.create_observable_gauge(
        "pulsegate.upstream.health", callbacks=[_observe(gate, "health")], unit="1",
        description="Health score of each upstream (0-1; docs/outbound.md).")

