"""Real services for the tests (Redis, PostgreSQL, MariaDB, Chromium), started on loopback.

The binaries come from Debian's packages (``python3 dev.py test`` installs them when it
runs as root). A test that needs a service *fails* when it is missing -- it never skips:
a green run must mean the service-backed behaviour was really exercised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is missing: install Debian's {package} package "
                    f"(python3 dev.py test does it when run as root)", pytrace=False)
    return path


class RedisServer:
    """A throw-away redis-server on a free loopback port; ``stop()``/``start()`` simulate
    an outage on the same port."""

    def __init__(self) -> None:
        self.binary = require("redis-server", "redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pulsegate-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def cluster_port(taken: list[int]) -> int:
    """A free port whose cluster-bus twin (port + 10000) fits and is free too."""
    for _ in range(200):
        p = free_port()
        if p <= 55535 and p not in taken:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
            return p
    raise RuntimeError("no free port pair for a cluster node")


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[list[int]]:
    """A throw-away Redis Cluster of ``masters`` nodes on loopback (no replicas); yields
    their ports once ``cluster_state`` is ok."""
    import redis

    server, cli = require("redis-server", "redis-server"), require("redis-cli", "redis-tools")
    ports: list[int] = []
    for _ in range(masters):
        ports.append(cluster_port(ports))
    tmp = tempfile.mkdtemp(prefix="pulsegate-cluster-")
    procs = [subprocess.Popen(
        [server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"{tmp}/nodes-{p}.conf", "--save", "", "--appendonly", "no",
         "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            wait_port(p)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        node = redis.Redis(port=ports[0])
        deadline = time.monotonic() + 30
        while node.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
            assert time.monotonic() < deadline, "the cluster never became ready"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


class Partition:
    """A TCP relay on a free loopback port to ``127.0.0.1:port``: what connects through
    it reaches the service until :meth:`cut`, then not at all -- bytes are swallowed
    both ways and new connections accepted and never answered, as a network partition
    looks (a timeout, not a refusal) -- while others still reach the service directly.
    :meth:`heal` closes what was open during the cut and forwards again."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.epoch = 0  # odd while cut
        self.sockets: list[tuple[int, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cut(self) -> None:
        with self.lock:
            self.epoch += 1 - self.epoch % 2

    def heal(self) -> None:
        with self.lock:
            self.epoch += self.epoch % 2
            stale = [s for epoch, s in self.sockets if epoch < self.epoch]
            self.sockets = [(e, s) for e, s in self.sockets if e == self.epoch]
        for sock in stale:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.heal()
        self.epoch += 2
        self.heal()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                epoch = self.epoch
                self.sockets.append((epoch, client))
            if epoch % 2:
                continue  # cut: accepted, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), 2)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.append((epoch, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, epoch), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, epoch: int) -> None:
        try:
            while data := src.recv(65536):
                if self.epoch == epoch:  # (after a cut: swallowed)
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def partition(port: int) -> Iterator[Partition]:
    relay = Partition(port)
    try:
        yield relay
    finally:
        relay.close()


def _pg_bin(name: str, bindir: Path | None = None) -> str:
    if bindir is not None:
        return str(bindir / name)
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        pytest.fail(f"{name} is missing: install Debian's postgresql package", pytrace=False)
    return str(candidates[-1])


def pgserver_bindir() -> Path:
    """PostgreSQL 16's binaries as the ``pgserver`` wheel ships them (a dev dependency:
    the advisor's ``EXPLAIN (GENERIC_PLAN)`` needs 16+, Debian bookworm has 15). Found
    without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        pytest.fail("pgserver is missing: pip install -e '.[dev]'", pytrace=False)
    return Path(spec.origin).parent / "pginstall" / "bin"


@contextlib.contextmanager
def postgres_server(bindir: Path | None = None) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields its URL
    (``postgresql://postgres@127.0.0.1:PORT/postgres``). Runs as the ``postgres`` user
    when we are root, since PostgreSQL refuses to run as root. ``bindir``: another
    installation's binaries (:func:`pgserver_bindir`)."""
    initdb, pg_ctl = _pg_bin("initdb", bindir), _pg_bin("pg_ctl", bindir)
    port = free_port()
    data = tempfile.mkdtemp(prefix="pulsegate-pg-")
    run_as: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([*run_as, pg_ctl, "-D", data, "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-l", f"{data}/log", "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(data, ignore_errors=True)


def fresh_database(postgres_url: str, name: str, schema: str) -> str:
    """(Re)create database ``name`` on the server of ``postgres_url``, run ``schema`` in
    it, and return its URL."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(schema)
    return url


@contextlib.contextmanager
def mariadb_server() -> Iterator[str]:
    """A throw-away MariaDB (Debian's ``mariadb-server-core``) on a free loopback port;
    yields ``mysql://root@127.0.0.1:PORT/``. An empty data directory and
    ``--skip-grant-tables``: no system tables to install (``mariadb-install-db`` needs
    the client package), up in about a second; any user name connects. Every statement
    the server receives is logged to the file ``SELECT @@general_log_file`` names."""
    binary = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    if binary is None:
        pytest.fail("mariadbd is missing: install Debian's mariadb-server-core package "
                    "(python3 dev.py test does it when run as root)", pytrace=False)
    port = free_port()
    data = tempfile.mkdtemp(prefix="pulsegate-maria-")
    as_root = ["--user=root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [binary, "--no-defaults", *as_root, f"--datadir={data}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={data}/sock", f"--pid-file={data}/pid",
         f"--log-error={data}/log", f"--tmpdir={data}", "--skip-grant-tables",
         "--skip-log-bin", "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
         "--log-output=FILE", "--general-log=1", f"--general-log-file={data}/general.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30.0)
        yield f"mysql://root@127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(data, ignore_errors=True)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is missing: install Debian's chromium package", pytrace=False)
