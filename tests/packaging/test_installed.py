"""The package as a user gets it (issue 20).

``python -m build`` makes an sdist and a wheel from the sdist; the wheel, installed into
a fresh virtual environment with only the extras a user names for a framework, runs that
framework's documented lines (``smoke_<name>.py`` beside this file): headers present,
queries counted, the N+1 found with its fix, the CLI or management command reporting.

Cost: one build per session (a few seconds, without build isolation: the dev extra has
hatchling); one virtual environment per extra set under ``.venv-smoke/``, kept while
pyproject's dependencies and the Python version are unchanged, so a run reinstalls only
the wheel (without dependencies). A first run installs each set once (pip's cache helps).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: the dev extra installs tomli there
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".venv-smoke"
BIN = "Scripts" if os.name == "nt" else "bin"
#: files that are not Python modules and must still ship
DATA_FILES = ("pulsegate/export/dashboard/page.html",)

#: smoke script -> the extras a user names for that framework
EXTRAS = {"core": "", "starlette": "starlette", "fastapi": "fastapi,sqlalchemy",
          "django": "django", "flask": "flask,sqlalchemy", "demo": "demo"}
#: what must *not* be importable in each environment (nothing extra crept in)
ABSENT = {"core": ["starlette", "sqlalchemy", "django", "flask", "rich", "uvicorn"],
          "starlette": ["fastapi", "sqlalchemy", "httpx"], "fastapi": ["django", "flask", "httpx"],
          "django": ["sqlalchemy", "flask", "starlette"], "flask": ["django", "starlette"],
          "demo": ["django", "flask"]}


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                 str(ROOT)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("pulsegate-*.whl")
    return wheel


def test_build_makes_an_sdist_and_a_wheel_with_everything_a_user_needs(dist: Path) -> None:
    (sdist,) = dist.glob("pulsegate-*.tar.gz")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(_wheel(dist)) as whl:
        names = set(whl.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(meta).decode()
        entry_points = whl.read(meta.replace("METADATA", "entry_points.txt")).decode()
    for path in ("pulsegate/__init__.py", "pulsegate/py.typed", "pulsegate/asgi.py",
                 "pulsegate/django/management/commands/pulsegate.py", *DATA_FILES):
        assert path in names, path
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    for extra in project["optional-dependencies"]:
        assert f"Provides-Extra: {extra}" in metadata, extra
    assert "pulsegate = pulsegate.cli:main" in entry_points
    assert "pulsegate = pulsegate.pytest_plugin" in entry_points
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "src/pulsegate/__init__.py"} <= members


def _nested(requirements: list[str]) -> list[str]:
    """The extras an extra pulls in through ``pulsegate[...]`` (the demo's, ``all``)."""
    return [e.strip() for r in requirements if r.startswith("pulsegate[")
            for e in r[len("pulsegate["):r.index("]")].split(",")]


def _environment(name: str, wheel: Path) -> Path:
    """A virtual environment with the wheel and ``EXTRAS[name]``; its python."""
    env = CACHE / name
    python = env / BIN / ("python.exe" if os.name == "nt" else "python")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [e for e in EXTRAS[name].split(",") if e]
    extras += [e for x in extras for e in _nested(project["optional-dependencies"][x])]
    # Only what this environment installs: a change to the dev extra rebuilds nothing.
    key = hashlib.sha256(repr((project.get("dependencies"),
                               [project["optional-dependencies"][e] for e in extras],
                               sys.version)).encode()).hexdigest()
    stamp = env / ".pulsegate-smoke"
    if not (python.exists() and stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(env, ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        target = f"pulsegate[{EXTRAS[name]}] @ {wheel.as_uri()}" if EXTRAS[name] else str(wheel)
        proc = _run([python, "-m", "pip", "install", "--quiet", target], timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        stamp.write_text(key)
    proc = _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
                 wheel], timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return python


@pytest.mark.parametrize("name", list(EXTRAS))
def test_the_wheel_with_only_a_frameworks_extras_runs_its_documented_lines(
        name: str, dist: Path) -> None:
    python = _environment(name, _wheel(dist))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PULSEGATE_", "PYTHON", "DJANGO_", "VIRTUAL_ENV"))}
    probe = _run([python, "-c", "import importlib.util as u, sys; print(' '.join(m for m in "
                  "sys.argv[1:] if u.find_spec(m)))", *ABSENT[name]], env=env, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "", (name, probe.stdout,
                                                                   probe.stderr)
    proc = _run([python, HERE / f"smoke_{name}.py"], cwd=HERE, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"{name} smoke: ok" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
