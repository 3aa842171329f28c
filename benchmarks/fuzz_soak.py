"""The request fuzz suite (issue 18, item 7) at soak length.

CI runs ``tests/test_fuzz_asgi.py``, ``tests/test_fuzz_wsgi.py`` and
``tests/django_adapter/test_django_fuzz.py`` with a few hundred derandomized examples
each; this runs the same properties -- the application's response byte for byte the same
with and without pulsegate apart from its own headers, no internal error -- with
``--examples`` fresh random examples per adapter (hypothesis prints the shrunk failing
request if one breaks a property).

    .venv/bin/python benchmarks/fuzz_soak.py --examples 20000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = {"asgi": "tests/test_fuzz_asgi.py", "wsgi": "tests/test_fuzz_wsgi.py",
          "django": "tests/django_adapter/test_django_fuzz.py"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=20_000, help="examples per adapter")
    ap.add_argument("adapters", nargs="*", default=list(SUITES), choices=list(SUITES))
    args = ap.parse_args()
    env = dict(os.environ, PULSEGATE_FUZZ_EXAMPLES=str(args.examples))
    failed = []
    for name in args.adapters:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:logging",
                               SUITES[name]], cwd=ROOT, env=env, capture_output=True, text=True)
        took = time.perf_counter() - t0
        verdict = "ok" if done.returncode == 0 else "FAILED"
        print(f"{name:7s} {args.examples} examples in {took:7.1f} s: {verdict}", flush=True)
        if done.returncode != 0:
            failed.append(name)
            print(done.stdout[-6000:], done.stderr[-2000:], sep="\n")
    print(f"soak: {len(args.adapters) - len(failed)} of {len(args.adapters)} adapters held "
          f"both properties over {args.examples} examples each")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
