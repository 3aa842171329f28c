"""Load one of the repository's scripts (``benchmarks/``, ``tools/``) as a module, so a
test can call its functions; registered in ``sys.modules`` under its file name, which
dataclasses and pickling inside the script need."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str) -> ModuleType:
    """The module of ``ROOT / relative`` (e.g. ``"benchmarks/allocator_sim.py"``)."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
