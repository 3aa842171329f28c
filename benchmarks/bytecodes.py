"""Per-request cost in Python bytecode instructions: for each adapter, the bare app vs
pulsegate vs OpenTelemetry's instrumentation, counted with the interpreter's own opcode
trace (``sys.settrace`` with ``f_trace_opcodes``). Deterministic and quick (seconds, no
valgrind), on the same stacks as ``instructions.py``.

    .venv/bin/python benchmarks/bytecodes.py [--requests 500] [--top 12] [family ...]

Why count bytecodes beside CPU instructions: the instruction count weighs the C work
inside each bytecode, which is cheap while the middleware's code and data stay in the
nearest caches. Inside a real server every request follows another one and they do not:
then each bytecode also pays its dispatch and its cache lines, whatever it does, and the
bytecode count weighs that. Measured cold (after another app's request), the wall-clock
share of the ``*_overhead.py`` scripts has lain between the two shares (Flask: 9.4 %
of OpenTelemetry's instructions, 15 % of its time, 18.8 % of its bytecodes; Django: 7.7,
8.5 and 12.7 %). Work done in C (a dict lookup, ``str.join``) counts as the one bytecode
that called it: that is the point, and also the limit, of this count.

``--top N`` lists the N functions that add the most bytecodes per request under
pulsegate (``file:function``, by the difference from the bare stack).
"""

from __future__ import annotations

import argparse
import collections
import logging

from _common import count_bytecodes
from instructions import FAMILIES, MORE_STACKS, STACKS, driver

WARMUP = 500
#: What each family's share is of: the OpenTelemetry instrumentation its users install
#: (issue 19's budget: at most 10 %), then any other yardstick, for information.
YARDSTICKS: dict[str, tuple[tuple[str, str], ...]] = {
    "asgi": (("otel", "OpenTelemetry's ASGI middleware (budget)"),),
    "asgi-full": (("otel", "OpenTelemetry's ASGI middleware (budget)"),),
    "wsgi": (("otel", "OpenTelemetry's WSGI middleware (for information)"),),
    "flask": (("otel-flask", "OpenTelemetry's FlaskInstrumentor (budget)"),
              ("otel", "OpenTelemetry's bare WSGI middleware (for information)")),
    "django": (("otel", "OpenTelemetry's DjangoInstrumentor (budget)"),),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--top", type=int, default=0, help="list the N dearest functions")
    ap.add_argument("family", nargs="*", help=f"any of {', '.join(FAMILIES)}")
    args = ap.parse_args()
    unknown = set(args.family) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown family {', '.join(sorted(unknown))}; choose from {', '.join(FAMILIES)}")
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    print(f"bytecodes per request ({args.requests} requests after {WARMUP} warm-up)")
    for family in args.family or [f for f in FAMILIES if f != "engine"]:
        per: dict[str, float] = {}
        functions: dict[str, collections.Counter[str]] = {}
        for stack in STACKS + MORE_STACKS.get(family, ()):
            if family == "engine" and stack == "otel":
                continue
            drive = driver(family, stack)
            drive(WARMUP)
            functions[stack] = count_bytecodes(drive, args.requests)
            per[stack] = functions[stack].total() / args.requests
        print(f"\n{family}")
        for stack, value in per.items():
            print(f"  {stack:10s} {value:10,.0f} {value - per['bare']:+10,.0f}")
        if "otel" in per:
            added = per["pulsegate"] - per["bare"]
            for stack, what in YARDSTICKS.get(family, ()):
                print(f"  pulsegate adds {added / (per[stack] - per['bare']) * 100:.1f} % of "
                      f"what {what} adds")
        if args.top:
            diff = functions["pulsegate"]
            diff.subtract(functions["bare"])
            for name, value in diff.most_common(args.top):
                print(f"    {value / args.requests:8.1f}  {name}")


if __name__ == "__main__":
    main()
