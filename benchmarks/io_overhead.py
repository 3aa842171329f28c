"""Cost of pulsegate's cache and outbound hooks per call, against the bare call and
OpenTelemetry's instrumentation of the same library, in one run (issue 21).

Families, each a real client against a real local service started here:

* ``redis``    -- redis-py ``GET`` (a hit, over 64 keys) on a redis-server on loopback;
* ``httpx``    -- ``httpx.Client.get`` to a local HTTP server (keep-alive);
* ``requests`` -- ``requests.Session.get`` to the same server.

Stacks, interleaved round by round: ``bare`` (nothing installed), ``pulsegate``
(``pulsegate.caches.instrument`` / ``pulsegate.outbound.instrument``, inside a request
context so the per-request tally is kept too; an outbound call's unit run is queued and
learnt by the upstream's model on the scheduler thread: that part is measured apart and
printed as ``background``), ``otel`` (``RedisInstrumentor``,
``HTTPXClientInstrumentor``, ``RequestsInstrumentor`` with an SDK tracer provider whose
batch exporter discards the spans). Each round runs ``-n`` calls per stack; the time is
the thread's CPU clock (the server's work and the wait for it do not count, nor do
other processes on a shared machine), and the added cost of a stack is the median over
rounds of its round's difference from bare (paired). Budget: pulsegate adds <= 10 % of
what OpenTelemetry adds.

    python benchmarks/io_overhead.py [-n 2000] [--rounds 15] [family ...]
    python benchmarks/io_overhead.py --bytecodes [-n 640] [family ...]

``--bytecodes`` counts Python bytecodes per call instead (deterministic).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import count_bytecodes, discarding_tracer_provider, paired_added

FAMILIES = ("redis", "httpx", "requests")
STACKS = ("bare", "pulsegate", "otel")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    import socket

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def calls(family: str, where: str) -> Callable[[int], None]:
    """``run(n)``: n calls of the family's client (built once)."""
    if family == "redis":
        import redis

        client = redis.Redis.from_url(where)
        # 64 keys (a hit each): one in cache_reuse_sample is tracked, as in an app
        keys = [f"user:{i}:name" for i in range(64)]
        for key in keys:
            client.set(key, b"ada")

        def redis_calls(n: int) -> None:
            get = client.get
            for i in range(n):
                get(keys[i & 63])
        return redis_calls
    if family == "httpx":
        import httpx

        hclient = httpx.Client()

        def httpx_calls(n: int) -> None:
            get = hclient.get
            for _ in range(n):
                get(f"{where}/users/1")
        return httpx_calls
    import requests

    session = requests.Session()

    def requests_calls(n: int) -> None:
        get = session.get
        for _ in range(n):
            get(f"{where}/users/1")
    return requests_calls


@contextlib.contextmanager
def stack(family: str, name: str, provider: Any) -> Iterator[Any]:
    """Install ``name``'s instrumentation of ``family`` for the block; yields the gate
    (pulsegate) or None."""
    if name == "bare":
        yield None
        return
    if name == "pulsegate":
        from pulsegate.engine import PulseGate
        from pulsegate.records import RequestInfo

        gate = PulseGate()
        if family == "redis":
            import pulsegate.caches
            from pulsegate.caches.redis import uninstrument_redis

            pulsegate.caches.instrument(gate)
            undo: Callable[[], None] = uninstrument_redis
        else:
            import pulsegate.outbound
            from pulsegate.outbound.hooks import uninstrument

            pulsegate.outbound.instrument(gate, httpx=family == "httpx",
                                          requests=family == "requests")
            undo = uninstrument
        gate.scheduler.cancel("outbound.units")  # drained (and counted) below instead
        gate.scheduler.cancel("caches.drain")
        ctx = gate.begin(RequestInfo("GET", "/bench", "/bench"))
        try:
            yield gate
        finally:
            if ctx is not None:
                gate.finish(ctx)
            undo()
        return
    instrumentor: Any
    if family == "redis":
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        instrumentor = RedisInstrumentor()
    elif family == "httpx":
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        instrumentor = HTTPXClientInstrumentor()
    else:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield None
    finally:
        instrumentor.uninstrument()


def _drain(gate: Any) -> Callable[[int], None]:
    """The background half of pulsegate's per-call work (scheduler jobs in an app): the
    upstream unit runs queued by the calls, learnt by their models; the cache reads
    queued by redis GETs, counted per pattern."""
    import pulsegate.caches
    import pulsegate.outbound

    monitors = [m for m in (pulsegate.outbound.monitor_of(gate), pulsegate.caches.monitor_of(gate))
                if m is not None] if gate is not None else []

    def drain(n: int) -> None:
        for monitor in monitors:
            monitor.drain()
    return drain


def measure(family: str, where: str, n: int, rounds: int, provider: Any,
            bytecodes: bool) -> dict[str, float]:
    """Per-call cost of each stack (µs or bytecodes) on the calling thread, what each
    adds over bare, and pulsegate's background work per call (``background``)."""
    results: dict[str, list[float]] = {s: [] for s in STACKS}
    background: list[float] = []
    for _ in range(1 if bytecodes else rounds):
        for name in STACKS:
            with stack(family, name, provider) as gate:
                run = calls(family, where)  # a client made under the stack, as a user would
                run(64)
                drain = _drain(gate)
                drain(0)
                if bytecodes:
                    results[name].append(count_bytecodes(run, n).total() / n)
                    if gate is not None:
                        background.append(count_bytecodes(drain, 0).total() / n)
                else:
                    t0 = time.thread_time()
                    run(n)
                    results[name].append((time.thread_time() - t0) / n * 1e6)
                    if gate is not None:
                        t0 = time.thread_time()
                        drain(0)
                        background.append((time.thread_time() - t0) / n * 1e6)
    return paired_added(results, "bare") | {
        f"{s}_per_call": sorted(v)[len(v) // 2] for s, v in results.items()} | {
        "background": sorted(background)[len(background) // 2] if background else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=None, help="calls per stack and round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--bytecodes", action="store_true")
    ap.add_argument("family", nargs="*", help=f"any of {', '.join(FAMILIES)}")
    args = ap.parse_args()
    families = args.family or list(FAMILIES)
    n = args.n or (640 if args.bytecodes else 2000)
    logging.getLogger("pulsegate").setLevel(logging.CRITICAL)
    provider = discarding_tracer_provider()
    unit = "bytecodes" if args.bytecodes else "µs (thread CPU)"
    print(f"per call, {unit}; {n} calls per stack" +
          ("" if args.bytecodes else f", {args.rounds} rounds, paired medians"))
    with http_server() as http_url, redis_server() as redis_url:
        for family in families:
            where = redis_url if family == "redis" else http_url
            r = measure(family, where, n, args.rounds, provider, args.bytecodes)
            ours, otel = r["pulsegate"], r["otel"]
            share = ours / otel * 100 if otel > 0 else float("nan")
            print(f"\n{family}: bare {r['bare_per_call']:,.1f}  pulsegate +{ours:,.2f}  "
                  f"otel +{otel:,.2f}  ->  pulsegate adds {share:.1f} % of what "
                  f"OpenTelemetry adds (budget 10 %)")
            if r["background"]:
                both = (ours + r["background"]) / otel * 100 if otel > 0 else float("nan")
                what = "counting the queued GET per pattern" if family == "redis" else \
                    "the upstream's unit model learning the call"
                print(f"  + {r['background']:,.2f} per call on the scheduler thread ({what}): "
                      f"{both:.1f} % with it")


if __name__ == "__main__":
    main()
