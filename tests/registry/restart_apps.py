"""Tiny apps for the real-server restart tests (imported by uvicorn / gunicorn)."""

import contextlib
import os

from pulsegate.engine import PulseGate

gate = PulseGate(state_dir=os.environ["PULSEGATE_TEST_STATE"], exclude_paths=["/debug"],
                 snapshot_interval=float(os.environ.get("PULSEGATE_TEST_SNAPSHOT", "3600")),
                 measure_memory=False)
KEY = "GET /items/{id}"


def debug_state() -> dict:
    m = gate.baselines.peek(KEY)
    predicted, confidence = m.predict() if m is not None else (None, 0.0)
    return {"predicted": predicted, "confidence": confidence, "n": m.n if m else 0,
            "pid": os.getpid(), "worker": gate.ops.worker, "tag": gate.ops.predictions.tag}


def asgi_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from pulsegate.asgi import PulseGateMiddleware

    async def item(request):
        return PlainTextResponse("ok")

    async def debug(request):
        return JSONResponse(debug_state())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        # uvicorn re-raises SIGTERM after its graceful shutdown, so atexit never runs:
        # the lifespan shutdown is where the final snapshot happens.
        gate.close()

    app = Starlette(routes=[Route("/items/{id}", item), Route("/debug", debug)],
                    lifespan=lifespan)
    app.add_middleware(PulseGateMiddleware, gate=gate)
    return app


def wsgi_app():
    import json

    from pulsegate.wsgi import PulseGateWSGIMiddleware

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        body = json.dumps(debug_state()).encode() if path == "/debug" else b"ok"
        start_response("200 OK", [("content-type", "text/plain"),
                                  ("content-length", str(len(body)))])
        return [body]

    def route(environ):
        return "/items/{id}" if environ["PATH_INFO"].startswith("/items/") else None

    return PulseGateWSGIMiddleware(app, gate=gate, route_resolver=route)
