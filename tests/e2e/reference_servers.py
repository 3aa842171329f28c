"""Boot the reference apps in ``integrations/`` under their real servers on loopback.

Each deployment is a real server process (gunicorn sync workers for WSGI, uvicorn for
ASGI) started from the app's own directory, exactly as its README says; ``serve`` stops
it with SIGTERM and checks it shut down cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from services import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"


@dataclass(frozen=True)
class Deployment:
    """One app under one server."""

    name: str
    app_dir: Path
    server: str  # "gunicorn" | "uvicorn"
    target: str
    slash: bool  # Django's URLs end in "/"
    routes: dict[str, str]  # logical name -> route template pulsegate must report
    prepare: Callable[[dict[str, str]], None] | None = None

    def path(self, p: str) -> str:
        """``/books/1`` in this app's URL style (Django: ``/books/1/``)."""
        if not self.slash:
            return p
        base, _, query = p.partition("?")
        base = base if base.endswith("/") else base + "/"
        return base + ("?" + query if query else "")


def _django_prepare(env: dict[str, str]) -> None:
    """``manage.py migrate`` then ``manage.py seed``, in one Django start-up."""
    code = ("import django; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', interactive=False, verbosity=0); call_command('seed')")
    subprocess.run([sys.executable, "-c", code], cwd=INTEGRATIONS / "django_app", env=env,
                   check=True, timeout=120)


_DJANGO_ROUTES = {"book": "/books/<int:pk>/", "nplusone": "/authors/nplusone/",
                  "eager": "/authors/eager/", "error": "/error/", "stream": "/stream/"}

DEPLOYMENTS = {
    "fastapi-uvicorn": Deployment(
        "fastapi-uvicorn", INTEGRATIONS / "fastapi_app", "uvicorn", "app:app", False,
        {"book": "/books/{book_id}", "nplusone": "/authors/nplusone", "eager": "/authors/eager",
         "error": "/error", "stream": "/stream"}),
    "flask-gunicorn": Deployment(
        "flask-gunicorn", INTEGRATIONS / "flask_app", "gunicorn", "app:create_app()", False,
        {"book": "/books/<int:book_id>", "nplusone": "/authors/nplusone",
         "eager": "/authors/eager", "error": "/error", "stream": "/stream"}),
    "django-gunicorn": Deployment(
        "django-gunicorn", INTEGRATIONS / "django_app", "gunicorn", "bookshop.wsgi:application",
        True, _DJANGO_ROUTES, _django_prepare),
    "django-uvicorn": Deployment(
        "django-uvicorn", INTEGRATIONS / "django_app", "uvicorn", "bookshop.asgi:application",
        True, _DJANGO_ROUTES, _django_prepare),
}


def database_url(kind: str, tmp: Path, postgres_url: str | None, name: str) -> str:
    """A fresh database for one deployment: a SQLite file, or a new PostgreSQL database
    named ``name`` in the test cluster."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / (name + '.sqlite3')}"
    assert postgres_url is not None
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_url)
    return urlunsplit(parts._replace(path="/" + name))


@dataclass
class Running:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(dep: Deployment, db_url: str, log: Path, **env_extra: str) -> Running:
    """Prepare the database and launch the server (without waiting for it)."""
    env = dict(os.environ)
    env.update(DATABASE_URL=db_url, PYTHONPATH=os.pathsep.join(
        [str(dep.app_dir), str(ROOT / "src")]), PYTHONUNBUFFERED="1",
               # Flask builds "Allow" from a set: fix hash order so twin servers agree.
               PYTHONHASHSEED="0", **env_extra)
    if dep.app_dir.name == "django_app":
        env["DJANGO_SETTINGS_MODULE"] = "bookshop.settings"
    if dep.prepare is not None:
        dep.prepare(env)
    port = free_port()
    if dep.server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", dep.target, "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--graceful-timeout", "5", "--access-logfile", "-"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", dep.target, "--host", "127.0.0.1",
               "--port", str(port), "--timeout-graceful-shutdown", "5"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=dep.app_dir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return Running(dep.name, f"http://127.0.0.1:{port}", port, proc, log)


def wait_ready(running: Running, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    proc = running.proc
    while True:
        try:
            wait_port(running.port, timeout=0.5)
            return
        except TimeoutError:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                raise AssertionError(
                    f"{running.name} did not start:\n{running.output()}") from None


def stop(running: Running) -> None:
    """SIGTERM, as a process manager would; a server that ignores it fails the test."""
    proc = running.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError(f"{running.name} ignored SIGTERM:\n{running.output()}") from None


@contextlib.contextmanager
def serve(dep: Deployment, db_url: str, log: Path, **env_extra: str) -> Iterator[Running]:
    running = start(dep, db_url, log, **env_extra)
    try:
        wait_ready(running)
        yield running
    finally:
        stop(running)


def assert_clean_shutdown(running: Running) -> None:
    """Exit status 0 (uvicorn re-raises the SIGTERM it handled: -15 is clean too), the
    server's own shutdown message, and no pulsegate fault in the log."""
    out = running.output()
    assert running.proc.returncode in (0, -signal.SIGTERM), out
    assert ("Shutting down: Master" in out) or ("Application shutdown complete" in out) or (
        "Finished server process" in out), out
    assert "pulsegate internal error" not in out, out


def raw_request(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def split_response(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Status line, headers (in order) and the raw body bytes of an HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, body
