"""The oldest ORMs pulsegate supports (``django>=4.2``, ``sqlalchemy>=2.0`` in pyproject):
the ORM-structural tests run again with Django 4.2 LTS and SQLAlchemy 2.0.x (issue 17,
"Bad input": ORM internals that change between Django 4.2-5.x and SQLAlchemy 2.0-2.1
never raise). The development environment has the newest of both.

The environment lives under ``.venv-oldest/``, built without pip (the running
interpreter's pip installs into it) from :data:`REQUIREMENTS`, with ``src/`` on its path
(a ``.pth`` file, not a build; the pytest plugin is loaded by name), and kept while
the requirements and the Python version are unchanged. Cost on this 2-core machine
under load: ≈ 35 s to build with pip's cache, ≈ 50 s of tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / ".venv-oldest"
#: The oldest supported release line of each ORM.
PINS = ("django>=4.2,<4.3", "sqlalchemy>=2.0,<2.1")
REQUIREMENTS = (*PINS, "asgiref", "pytest", "pytest-asyncio", "hypothesis", "aiosqlite",
                "greenlet", "jinja2", "werkzeug", "prometheus-client")
#: The tests that reach into the ORMs: SQLAlchemy's hooks and structural rule, the peer
#: suites on both ORMs, Django's relationship marks, middleware and checks.
TESTS = ("tests/test_sqlalchemy.py", "tests/test_sqlalchemy_peer_suite.py",
         "tests/django_instrument", "tests/django_adapter")


def _python() -> Path:
    python = ENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    key = hashlib.sha256(repr((REQUIREMENTS, sys.version, str(ROOT))).encode()).hexdigest()
    stamp = ENV / ".pulsegate-oldest"
    if python.exists() and stamp.exists() and stamp.read_text() == key:
        return python
    shutil.rmtree(ENV, ignore_errors=True)
    venv.EnvBuilder(with_pip=False, clear=True).create(ENV)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # ``src/`` on the path, as an editable install would put it (tests start fresh
    # interpreters with a bare environment), without building the package
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    (Path(site) / "pulsegate-src.pth").write_text(f"{ROOT / 'src'}\n")
    stamp.write_text(key)
    return python


def test_the_orm_tests_pass_on_django_4_2_and_sqlalchemy_2_0() -> None:
    python = _python()
    versions = subprocess.run(
        [python, "-c", "import django, sqlalchemy; print(django.__version__, sqlalchemy.__version__)"],
        capture_output=True, text=True, timeout=60)
    django_version, sqlalchemy_version = versions.stdout.split()
    assert django_version.startswith("4.2.") and sqlalchemy_version.startswith("2.0."), versions
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PULSEGATE_", "PYTHON", "DJANGO_", "VIRTUAL_ENV"))}
    proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "pulsegate.pytest_plugin", *TESTS],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"Django {django_version}, SQLAlchemy {sqlalchemy_version}:\n{tail}"
    assert " passed" in proc.stdout.splitlines()[-1], tail
