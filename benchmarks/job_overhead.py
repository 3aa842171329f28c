"""Per-job cost of pulsegate against the bare call and against OpenTelemetry's Celery
instrumentation, in one run (issue 21: at most 10 % of what OpenTelemetry adds).

* **Celery**: a task run in-process by ``task.apply()`` -- Celery's own tracer with every
  signal a worker sends (``task_prerun``, ``task_success``, ``task_postrun``), without
  the broker round trip, which would drown both costs in noise. The stacks: bare,
  ``pulsegate.jobs.celery.instrument()`` learning inline and in the background (the
  default: the scheduler thread's drain is counted apart), ``CeleryInstrumentor().
  instrument()`` with an SDK tracer provider whose batch exporter discards the spans
  (the whole cost of tracing, none of an export's I/O), and both together with
  pulsegate's OpenTelemetry exporter on the same provider (measured against
  OpenTelemetry's stack: what pulsegate adds to a traced worker). Signals are global,
  so each stack is switched on for its own turn of each round and off after it.
* **observe_job**: a plain function called bare and under ``@observe_job``.

Every stack runs as in a worker: Celery's worker replaces the base task's ``__call__``
with its stack protection at start (``celery.app.trace._install_stack_protection``, from
``setup_worker_optimizations``), so its tracer calls every task through ``__call__``;
``task.apply()`` in a process that is no worker would call ``task.run`` directly and make
the bare stack cheaper than a worker's by that call (``--no-worker-setup`` measures that
way, as before 2026-12-07 17:08). ``pulsegate.jobs.celery`` stands in for that
``__call__`` and does what it does.

The stacks alternate round by round, in many short rounds; what a stack adds is the
median over rounds of its difference from the bare stack of the same round.

    .venv/bin/python benchmarks/job_overhead.py [--jobs 300] [--rounds 30] [--bytecodes]
        [--no-worker-setup]

``--bytecodes`` prints the bytecodes pulsegate adds per job instead (deterministic);
``--instructions`` the CPU instructions, counted by valgrind's callgrind, each stack in a
process of its own (C work included: clocks, the block count, allocation).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable

from _common import count_bytecodes, discarding_tracer_provider, freeze_setup, paired_added
from celery import Celery
from celery.app.trace import trace_task

from pulsegate.engine import PulseGate
from pulsegate.jobs import celery as pg_celery
from pulsegate.jobs import observe_job, set_gate

app = Celery("bench", broker="memory://", backend="cache+memory://")
app.conf.update(task_store_eager_result=False, task_ignore_result=True)


@app.task(name="bench.work")  # type: ignore[untyped-decorator]
def work(x: int) -> int:
    return x + 1


#: False: run each task as a worker does (see the module); True: ``task.apply()``.
NO_WORKER_SETUP = False
#: How long each message waited in the queue (s).
WAITED = 0.005


def worker_request(i: int) -> dict[str, object]:
    """The request a worker hands its tracer for a message (``celery.worker.request.
    Request``: the message's headers -- protocol 2, with the ``before_task_publish`` header
    of an instrumented producer -- plus the worker's own fields)."""
    # (the fields a real worker's task saw: vars(self.request) in a task run by
    # `celery worker` on Redis, Celery 5, 2026-12-07; ids shortened)
    tid = str(i)
    return {"lang": "py", "task": work.name, "id": tid, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": tid, "parent_id": None,
            "argsrepr": f"({i},)", "kwargsrepr": "{}", "origin": "gen1@bench",
            "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {}, pg_celery.HEADER: time.time() - WAITED,
            "properties": {"correlation_id": tid, "reply_to": "r", "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": "celery"},
                           "priority": 0, "body_encoding": "base64", "delivery_tag": tid},
            "reply_to": "r", "correlation_id": tid, "hostname": "celery@bench",
            "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0,
                              "redelivered": False},
            "args": [i], "kwargs": {}, "callbacks": None, "errbacks": None, "chain": None,
            "chord": None}


def plain(x: int) -> int:
    return x + 1


observed = observe_job("bench.plain")(plain)


class Stack:
    """A way of running jobs, switched on for its turn (signals are process-wide)."""

    def __init__(self, call: Callable[[int], object], on: Callable[[], None] = lambda: None,
                 off: Callable[[], None] = lambda: None) -> None:
        self.call, self.on, self.off = call, on, off

    def calls(self, n: int) -> None:
        call = self.call
        for i in range(n):
            call(i)

    def run(self, n: int) -> float:
        self.on()
        try:
            call = self.call
            for i in range(50):  # warm the path and the job's model
                call(i)
            t0 = time.perf_counter()
            for i in range(n):
                call(i)
            return (time.perf_counter() - t0) / n * 1e6
        finally:
            self.off()


#: job_learning="background": the worker's thread closes and queues each run, the
#: scheduler's drain learns it (pulsegate.jobs.deferred); the drain is measured apart.
BACKGROUND = PulseGate(log_events=False, job_learning="background")
BACKGROUND_STACK = "celery + pulsegate, background"
#: job_learning="inline" (the default until 2026-12-07): the worker's thread learns it.
INLINE_STACK = "celery + pulsegate, inline"
#: Both instrumentations, pulsegate in the background with its OpenTelemetry exporter on
#: the same tracer provider: the job's thread also reads the context the job started in,
#: the drain makes the child span (``pulsegate.export.otel_jobs``). Measured against the
#: OpenTelemetry stack alone.
TRACED = PulseGate(log_events=False, job_learning="background")
TRACED_STACK = "celery + otel + pulsegate, bg"
OTEL_STACK = "celery + opentelemetry celery"


def drain_background(n: int = 0, gate: PulseGate = BACKGROUND) -> int:
    """Learn the queued runs; returns how many starts and ends (two a job)."""
    from pulsegate.jobs.runs import deferred_of

    return deferred_of(gate).drain()


def counted_drain(gate: PulseGate = BACKGROUND) -> tuple[int, int]:
    """The bytecodes of one drain of ``gate``'s background queue, and the starts and
    ends it learnt."""
    learnt: list[int] = []
    counts = count_bytecodes(lambda _: learnt.append(drain_background(gate=gate)), 0)
    return sum(counts.values()), learnt[0]


def stacks() -> dict[str, Stack]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    provider = discarding_tracer_provider()
    otel = CeleryInstrumentor()  # type: ignore[no-untyped-call]

    def otel_on() -> None:
        otel.instrument(tracer_provider=provider)

    def pg_on() -> None:
        pg_celery.instrument(app)

    def pg_background_on() -> None:
        pg_celery.instrument(app, gate=BACKGROUND)

    from opentelemetry.sdk.metrics import MeterProvider

    from pulsegate.export import otel as pg_otel

    pg_otel.install(TRACED, meter_provider=MeterProvider(), tracer_provider=provider)

    def both_on() -> None:
        otel_on()
        pg_celery.instrument(app, gate=TRACED)

    def both_off() -> None:
        pg_celery.uninstrument()
        otel.uninstrument()

    def apply(i: int) -> object:
        return work.apply((i,))

    def as_worker(i: int) -> object:
        return trace_task(work, str(i), (i,), {}, worker_request(i), app=app)

    run = apply if NO_WORKER_SETUP else as_worker

    return {
        "celery bare": Stack(run),
        INLINE_STACK: Stack(run, pg_on, pg_celery.uninstrument),
        BACKGROUND_STACK: Stack(run, pg_background_on, pg_celery.uninstrument),
        OTEL_STACK: Stack(run, otel_on, otel.uninstrument),
        TRACED_STACK: Stack(run, both_on, both_off),
        "function bare": Stack(plain),
        "function + observe_job": Stack(observed),
    }


def bytecodes(n: int) -> None:
    """Bytecodes per job each way, and what pulsegate adds."""
    all_stacks = stacks()
    per: dict[str, float] = {}
    for name, stack in all_stacks.items():
        stack.on()
        try:
            for i in range(50):
                stack.call(i)
            counts = count_bytecodes(stack.calls, n)
        finally:
            stack.off()
        per[name] = sum(counts.values()) / n
        if name in (BACKGROUND_STACK, TRACED_STACK):
            gate = BACKGROUND if name == BACKGROUND_STACK else TRACED
            drain_background(gate=gate)
            stack.on()
            try:
                stack.calls(n)
            finally:
                stack.off()
            # per job learnt by this drain: the scheduler's own drain (every 0.5 s, on its
            # thread, not counted) may have learnt some of them while the jobs ran
            ran, learnt = counted_drain(gate)
            per["scheduler thread" if gate is BACKGROUND else "its drain"] = ran / (learnt / 2)
    for base, names in (("celery bare", (INLINE_STACK, BACKGROUND_STACK, OTEL_STACK,
                                         TRACED_STACK)),
                        ("function bare", ("function + observe_job",))):
        print(f"{base:32s} {per[base]:9.0f} bytecodes/job")
        for name in names:
            print(f"{name:32s} {per[name]:9.0f}  +{per[name] - per[base]:.0f}")
    ot = per["celery + opentelemetry celery"] - per["celery bare"]
    for name in (INLINE_STACK, BACKGROUND_STACK):
        pg = per[name] - per["celery bare"]
        print(f"celery: {name} adds {pg:.0f} bytecodes = {pg / ot * 100:.1f} % of "
              f"OpenTelemetry's {ot:.0f} on the worker's thread")
    bg = per["scheduler thread"]
    both = per[BACKGROUND_STACK] - per["celery bare"] + bg
    print(f"  background learning: + {bg:.0f} bytecodes a job on the scheduler thread; "
          f"{both:.0f} = {both / ot * 100:.1f} % with it")
    traced = per[TRACED_STACK] - per[OTEL_STACK]
    print(f"celery: {TRACED_STACK} adds {traced:.0f} bytecodes to OpenTelemetry's stack = "
          f"{traced / ot * 100:.1f} % of OpenTelemetry's {ot:.0f} on the worker's thread "
          f"(its drain, the child span included: + {per['its drain']:.0f} on the scheduler "
          "thread)")


def prepare(no_worker_setup: bool) -> PulseGate:
    """The process as a worker's (unless ``no_worker_setup``); the inline gate."""
    global NO_WORKER_SETUP
    NO_WORKER_SETUP = no_worker_setup
    if not NO_WORKER_SETUP:
        from celery.app.trace import _install_stack_protection

        _install_stack_protection()
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    logging.getLogger("celery").setLevel(logging.CRITICAL)
    gate = PulseGate(log_events=False, job_learning="inline")
    set_gate(gate)
    for g in (gate, BACKGROUND, TRACED):
        # A worker that has run for a while: the block counts' starting credit (50 ms,
        # pulsegate.unit_blocks) is spent -- it would count the first ~2 000 tiny jobs
        # of a large process each (two sys.getallocatedblocks(), ≈ 23 µs here) and the
        # steady state counts one in ≈ 50 (1 % of their time)
        g.units.memory.credit = 0.0
    return gate


#: Jobs every ``--instructions`` child runs before the counted ones.
WARM = 200
#: ``--instructions``: the stacks counted, each in a process of its own; ``DRAIN`` counts
#: the scheduler thread's drain of the background stack's jobs.
COUNTED = ("celery bare", INLINE_STACK, BACKGROUND_STACK,
           "celery + opentelemetry celery", TRACED_STACK)
DRAIN = "scheduler thread"


def child(stack_name: str, n: int, no_worker_setup: bool) -> None:
    """One stack alone in this process: ``WARM`` jobs, then ``n`` counted (between two
    ``os.getppid()`` marks, see instructions.window_counts)."""
    import os

    from pulsegate import scheduler

    prepare(no_worker_setup)
    stack = stacks()[BACKGROUND_STACK if stack_name == DRAIN else stack_name]
    stack.on()
    stack.calls(WARM)
    drain_background()
    # The gates' periodic jobs run on their own thread every 0.5 s of wall time: under
    # valgrind (≈ 50x slower) they would land in the window. Parked for it: the thread's
    # current wait ends, the next one outlasts the run (as real_pages.py does).
    for each in list(scheduler._ALL):
        each.tick = 1e6
    time.sleep(1.0)
    if stack_name == DRAIN:
        stack.calls(n)
    freeze_setup()
    os.getppid()
    if stack_name == DRAIN:
        print("learnt", drain_background(), flush=True)
    elif n:
        stack.calls(n)
    os.getppid()


def instructions(n: int, no_worker_setup: bool) -> None:
    """Instructions (and cache misses) a job each way, each stack in a valgrind child."""
    import subprocess
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from instructions import EVENTS, window_counts

    names = (*COUNTED, DRAIN)
    flag = ["--no-worker-setup"] if no_worker_setup else []
    argv = {name: [__file__, "--child", name, str(n), *flag] for name in names}
    subprocess.run([sys.executable, __file__, "--child", "celery bare", "0", *flag],
                   check=True)  # compile and cache every module first, not under valgrind
    out = tempfile.gettempdir() + "/job_overhead.{}.out"
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(names, pool.map(lambda name: window_counts(
            argv[name], out.format(names.index(name))), names), strict=True))
    per = {name: {k: runs[name][k] / n for k in EVENTS.values()} for name in names}
    bare = per["celery bare"]
    otel = per["celery + opentelemetry celery"]["instructions"] - bare["instructions"]
    print(f"{n} jobs after {WARM}, instructions (Ir) and level-1 data read misses a job")
    # (the traced stack over OpenTelemetry's, the drain alone, the others over bare)
    base = {name: bare for name in names}
    base[TRACED_STACK] = per[OTEL_STACK]
    base[DRAIN] = {k: 0.0 for k in EVENTS.values()}
    for name in names:
        added = per[name]["instructions"] - base[name]["instructions"]
        misses = per[name]["d1_read_misses"] - base[name]["d1_read_misses"]
        print(f"{name:32s} Ir {per[name]['instructions']:10,.0f} {added:+10,.0f} "
              f"({added / otel * 100:5.1f} % of OTel's) D1r {misses:+8,.1f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), "--no-worker-setup" in sys.argv)
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300, help="per stack and round")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--bytecodes", action="store_true")
    ap.add_argument("--no-worker-setup", action="store_true",
                    help="without the worker's stack protection (a bare task skips __call__)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions and cache misses under valgrind, not time")
    args = ap.parse_args()
    gate = prepare(args.no_worker_setup)
    if args.bytecodes:
        bytecodes(args.jobs)
        return
    if args.instructions:
        instructions(args.jobs, args.no_worker_setup)
        return
    all_stacks = stacks()
    freeze_setup()
    results: dict[str, list[float]] = {name: [] for name in all_stacks}
    drained: list[float] = []
    for _ in range(args.rounds):
        for name, stack in all_stacks.items():
            results[name].append(stack.run(args.jobs))
            if name == BACKGROUND_STACK:
                t0 = time.perf_counter()
                drain_background()
                drained.append((time.perf_counter() - t0) / (args.jobs + 50) * 1e6)
    med = {name: statistics.median(v) for name, v in results.items()}
    print(f"{args.jobs} jobs x {args.rounds} rounds, in-process: median µs/job, and the "
          "median of each round's difference from the bare stack")
    print(f"{'stack':32s} {'µs/job':>8s} {'added':>8s} {'vs OTel added':>14s}")
    celery = paired_added({k: v for k, v in results.items() if k.startswith("celery")},
                          "celery bare")
    o = celery["celery + opentelemetry celery"]
    for name in ("celery bare", INLINE_STACK, BACKGROUND_STACK,
                 "celery + opentelemetry celery"):
        share = f"{celery[name] / o * 100:6.1f} %" if name != "celery bare" else ""
        print(f"{name:32s} {med[name]:8.1f} {celery[name]:+8.1f} {share:>14s}")
    print(f"  background learning: + {statistics.median(drained):.1f} µs a job on the "
          "scheduler thread (the drain, timed after each round)")
    traced = celery[TRACED_STACK] - o
    print(f"{TRACED_STACK:32s} {med[TRACED_STACK]:8.1f} {traced:+8.1f} "
          f"{traced / o * 100:6.1f} %  (over OpenTelemetry's stack)")
    pg = celery[BACKGROUND_STACK]
    verdict = "within" if pg <= 0.10 * o else "OVER"
    print(f"budget: pulsegate (background, the default) adds {pg:.1f} µs = "
          f"{pg / o * 100:.1f} % of OTel's {o:.1f} µs on the worker's thread "
          f"({verdict} the 10 % budget)")
    fn = paired_added({k: v for k, v in results.items() if k.startswith("function")},
                      "function bare")
    for name in ("function bare", "function + observe_job"):
        print(f"{name:32s} {med[name]:8.1f} {fn[name]:+8.1f}")
    print(f"pulsegate's own stats: {gate.stats()['units']}")


if __name__ == "__main__":
    main()
