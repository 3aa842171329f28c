"""A small Starlette app behind pulsegate whose latency, queries and N+1 pattern each
request chooses, on a fake clock the handler advances (no sleeping)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fakeclock import FakeClock
from pulsegate.context import query_sink
from pulsegate.engine import PulseGate
from pulsegate.queries.events import QueryEvent

SECRET = "s3cret-token"


class Wall:
    """Wall clock tied to the fake monotonic clock: aggregation windows follow it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def __call__(self) -> float:
        return 1_700_000_000.0 + self.clock.t


def build_app(clock: FakeClock) -> Starlette:
    async def work(request: Request) -> PlainTextResponse:
        ms = float(request.query_params.get("ms", "10"))
        n1 = int(request.query_params.get("n1", "0"))
        sink = query_sink.get()
        if sink is not None and n1:
            sink.add_query(QueryEvent("SELECT id, name FROM author", 0.2, clock.t,
                                      call_site="app/views.py:10 in work"))
            for i in range(n1):
                sink.add_query(QueryEvent(f"SELECT * FROM book WHERE author_id = {i + 1}",
                                          0.1, clock.t, params_hash=i,
                                          call_site="app/views.py:12 in work",
                                          relationship="Author.books"))
        clock.t += ms / 1000.0
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/work/{item}", work)])


def make_gate(clock: FakeClock, **options: Any) -> PulseGate:
    opts: dict[str, Any] = {"warmup": 5, "measure_cpu": False, "measure_memory": False,
                            "log_events": False}
    opts.update(options)
    return PulseGate(clock=clock, wall=Wall(clock), **opts)
