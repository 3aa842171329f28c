"""Core packages import no web framework and no ORM (adapters are the only ones that do)."""

from __future__ import annotations

import subprocess
import sys

#: Every optional dependency, frameworks and extras alike: importing the core and making
#: a default gate loads none of them (test_architecture.py's FRAMEWORKS is the static
#: rule: which packages a core module may name in an import at all).
OPTIONAL_PACKAGES = ("starlette", "fastapi", "django", "flask", "werkzeug", "sqlalchemy", "redis",
                     "opentelemetry", "prometheus_client", "sklearn", "numpy", "uvicorn", "rich")

PROBE = f"""
import sys
import pulsegate, pulsegate.learn, pulsegate.queries, pulsegate.control, pulsegate.registry
import pulsegate.export
from pulsegate import PulseGate
gate = PulseGate()
gate.close()
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL_PACKAGES!r}))
print(','.join(loaded))
"""


def test_core_and_a_default_gate_import_no_framework() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"core imported: {proc.stdout.strip()}"
