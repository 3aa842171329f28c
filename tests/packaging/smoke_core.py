"""pulsegate with no extras, as installed: the WSGI middleware on a bare WSGI app, the
CLI on a fresh machine (no state yet), and ``pulsegate demo`` naming what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from wsgiref.util import setup_testing_defaults

from smoke_common import check_installed, run_cli

from pulsegate.wsgi import PulseGateWSGIMiddleware

check_installed()


def hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"hello"]


app = PulseGateWSGIMiddleware(hello)
seen: list[list[tuple[str, str]]] = []
for _ in range(30):
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: seen.append(headers))
    assert b"".join(body) == b"hello"  # read, never closed: still learned
assert app.gate.stats()["requests"] == 30, app.gate.stats()
assert any(k == "x-ml-predicted-latency-ms" for k, _ in seen[-1]), seen[-1]

# The CLI with no state anywhere says where state comes from, without a traceback.
env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGATE_")}
exe = Path(sys.executable).with_name("pulsegate")
empty = tempfile.mkdtemp()
for args in (["report"], ["report", "--state-dir", empty], ["stats", "--state-dir", empty]):
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env,
                          timeout=60)
    print(args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "state_dir" in proc.stdout + proc.stderr

# `pulsegate demo` without the demo's dependencies names the extra to install.
proc = subprocess.run([str(exe), "demo"], capture_output=True, text=True, env=env, timeout=60)
print(proc.returncode, proc.stderr)
assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
assert "pip install" in proc.stderr and "pulsegate[demo]" in proc.stderr, proc.stderr
print(run_cli("--help"))
print("core smoke: ok")
