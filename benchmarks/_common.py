"""Shared pieces of the per-request overhead benchmarks (imported by the scripts next to
this file, which run with this directory on sys.path)."""

from __future__ import annotations

import argparse
import collections
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

#: The clock the timed scripts read (``timer()``): the wall clock, or after
#: :func:`use_cpu_clock` this thread's CPU time, which the other processes of a loaded
#: machine do not inflate by preempting a round (they still evict its caches).
timer: Callable[[], float] = time.perf_counter


def add_clock_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--cpu-clock", action="store_true",
                    help="time with the thread's CPU clock, not the wall clock (a loaded machine)")


def use_cpu_clock(wanted: bool) -> None:
    """Time with ``time.thread_time`` from now on, if ``wanted`` (``--cpu-clock``)."""
    global timer
    if wanted:
        timer = time.thread_time


def discarding_tracer_provider() -> Any:
    """An OpenTelemetry SDK tracer provider whose batch exporter discards the spans: the
    whole cost of tracing on the request path, none of an export's I/O."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


def engine_only(n: int) -> float:
    """The framework-free core alone (begin, response_headers, finish), per request: the
    part of the overhead the adapter does not control."""
    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    gate = PulseGate()
    infos = [RequestInfo("GET", f"/hello/u{i % 50}/", "/hello/<name>/") for i in range(n)]
    for info in infos[:200]:
        ctx = gate.begin(info)
        assert ctx is not None
        gate.response_headers(ctx, 200)
        gate.finish(ctx)
    t0 = timer()
    for info in infos:
        ctx = gate.begin(info)
        assert ctx is not None
        gate.response_headers(ctx, 200)
        gate.finish(ctx)
    return (timer() - t0) / n * 1e6


def freeze_setup() -> None:
    """Move everything the benchmark built (three apps, OpenTelemetry's SDK, the request
    list) out of the garbage collector's reach, as a pre-forking server does with
    ``gc.freeze()``: otherwise each full collection walks that whole heap, and a stack's
    measured cost depends on how often its allocations trigger one in *this* process
    rather than on its own work. Request-made objects are still collected as usual."""
    gc.collect()
    gc.freeze()


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    """A WSGI start_response that discards what it is given."""
    return None


def paired_added(results: dict[str, list[float]], base: str) -> dict[str, float]:
    """What each stack adds to ``base``: the median over rounds of the round's own
    difference (stack minus base, measured back to back). On a shared machine a slow
    spell lifts every stack of its round alike, so it cancels in the difference; it does
    not cancel between medians taken separately, which wander by several µs."""
    return {name: statistics.median([x - y for x, y in zip(v, results[base], strict=True)])
            for name, v in results.items()}


def opcode_tracer(counts: collections.Counter[str]) -> Callable[[FrameType, str, Any], Any]:
    """A ``sys.settrace`` function counting every bytecode run into ``counts``, per
    function (``file:function``); deterministic, unlike a clock."""

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        code = frame.f_code
        name = f"{Path(code.co_filename).name}:{getattr(code, 'co_qualname', code.co_name)}"

        def on_opcode(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[name] += 1
            return on_opcode
        return on_opcode
    return on_call


def count_bytecodes(drive: Callable[[int], object], n: int) -> collections.Counter[str]:
    """Bytecodes run by ``drive(n)``, per function (``file:function``)."""
    counts: collections.Counter[str] = collections.Counter()
    sys.settrace(opcode_tracer(counts))
    try:
        drive(n)
    finally:
        sys.settrace(None)
    return counts
