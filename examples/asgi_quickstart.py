"""pulsegate on a FastAPI app in two lines, then what it learnt.

    .venv/bin/python examples/asgi_quickstart.py

Runs in-process (Starlette's TestClient, no server): 60 requests to a steady endpoint,
then one slow one, printing the headers pulsegate adds and its per-endpoint view.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pulsegate import PulseGate
from pulsegate.asgi import PulseGateMiddleware

app = FastAPI()
gate = PulseGate(warmup=20, exclude_paths=["/health"])
app.add_middleware(PulseGateMiddleware, gate=gate)  # type: ignore[arg-type]


@app.get("/orders/{order_id}")
def order(order_id: int, slow: bool = False) -> dict[str, int]:
    time.sleep(0.060 if slow else 0.005)
    return {"order": order_id}


if __name__ == "__main__":
    client = TestClient(app)
    for i in range(60):
        client.get(f"/orders/{i}")
    steady = client.get("/orders/61")
    slow = client.get("/orders/62", params={"slow": True})
    for name, response in (("steady", steady), ("slow", slow)):
        shown = {k: v for k, v in response.headers.items() if k.startswith("x-ml-")}
        print(f"{name:7s} {shown}")
    print(gate.endpoints())
    print({k: v for k, v in gate.stats().items() if k != "internal_errors_by_kind"})
    assert float(slow.headers["x-ml-anomaly-score"]) > 0.5
