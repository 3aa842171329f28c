"""A minimal FastAPI app for the foundation's end-to-end test (served by uvicorn)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from pulsegate.asgi import PulseGateMiddleware

app = FastAPI()
app.add_middleware(PulseGateMiddleware, warmup=3)


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@app.get("/stream")
def stream() -> StreamingResponse:
    return StreamingResponse(iter([b"a" * 1000, b"b" * 1000]))


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"ok": "yes"}
