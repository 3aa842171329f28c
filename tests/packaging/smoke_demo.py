"""pulsegate[demo] as installed: ``pulsegate demo`` runs (shortened) and prints its
per-endpoint report, with no internal error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smoke_common import check_installed

check_installed()
exe = Path(sys.executable).with_name("pulsegate")
proc = subprocess.run([str(exe), "demo", "--seconds", "4", "--concurrency", "2"],
                      capture_output=True, text=True, timeout=240)
print(proc.stdout[-3000:], proc.stderr[-3000:])
assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
# On a loaded machine a few seconds may be too few requests for an N+1 to be ranked,
# so only the report itself is required.
assert "what each endpoint taught the model" in proc.stdout, proc.stdout[-3000:]
assert "GET /fast" in proc.stdout and "internal errors 0" in proc.stdout, proc.stdout[-3000:]
print("demo smoke: ok")
