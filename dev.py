#!/usr/bin/env python3
"""The project's two entry points, usable on a fresh machine with only Python 3.10+.

    python3 dev.py demo   # run the demo (FastAPI app under uvicorn + traffic + report)
    python3 dev.py test   # lint, type-check and run the whole test suite
    python3 dev.py house  # file sizes, import cycles, private reach (tools/house.py)

``test`` and ``demo`` create or update ``.venv`` (re-installing only when ``pyproject.toml`` changed)
and installs what it needs. The services the tests need (Redis,
PostgreSQL, MariaDB, Chromium) are installed from Debian's packages when missing (as root).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"

# Debian packages the test-suite needs, keyed by a binary that proves they are present.
SERVICES = {
    "redis-server": ["redis-server"],
    "chromium": ["chromium", "chromium-driver"],
    "postgresql": ["postgresql"],
    "mariadbd": ["mariadb-server-core"],  # the advisor's MySQL/MariaDB plans
    "wrk": ["wrk"],  # the load generator of benchmarks/real_server.py
}


def sh(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, env=env)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
    stamp.write_text(digest)


def _postgres_present() -> bool:
    return bool(shutil.which("initdb")) or bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


def ensure_services() -> None:
    """Install the Debian packages behind the service tests, when we are allowed to."""
    missing: list[str] = []
    if not shutil.which("redis-server"):
        missing += SERVICES["redis-server"]
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing += SERVICES["chromium"]
    if not _postgres_present():
        missing += SERVICES["postgresql"]
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        missing += SERVICES["mariadbd"]
    if not shutil.which("wrk"):
        missing += SERVICES["wrk"]
    if not missing:
        return
    can_apt = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if not can_apt:
        print(f"note: missing {missing}; service tests will fail under CI=true", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh("apt-get", "update", "-qq", env=env)
    sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


def test(args: list[str]) -> int:
    ensure_venv("dev")
    ensure_services()
    sh(BIN / "ruff", "check", "src", "tests", "benchmarks", "tools", "examples", "integrations", "dev.py")
    sh(BIN / "mypy")
    proc = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT)
    return proc.returncode


def demo(args: list[str]) -> int:
    ensure_venv("dev")
    return subprocess.run([str(PY), "-m", "pulsegate.demo", *args], cwd=ROOT).returncode


def house(args: list[str]) -> int:
    """Standard library only: runs before ``.venv`` exists."""
    return subprocess.run([sys.executable, str(ROOT / "tools" / "house.py"), *args], cwd=ROOT).returncode


def main() -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit("pulsegate needs Python 3.10 or newer")
    commands = {"test": test, "demo": demo, "house": house}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
