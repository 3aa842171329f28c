import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from pulsegate.faults import FaultCounter
from pulsegate.registry.alerts import AlertManager


def test_queue_then_flush_logs_and_calls_back(caplog) -> None:
    now = [100.0]
    got = []
    mgr = AlertManager(wall=lambda: now[0], faults=FaultCounter(), callback=got.append,
                       cooldown=60)
    assert mgr.raise_alert("accuracy", "m", "warning", "m is bad", accuracy=0.5) is not None
    assert got == []  # nothing delivered on the calling thread
    assert mgr.raise_alert("accuracy", "m", "warning", "again") is None  # cooldown
    assert mgr.suppressed == 1
    with caplog.at_level("WARNING", logger="pulsegate.alerts"):
        assert mgr.flush() == 1
    assert got[0].kind == "accuracy" and got[0].fields == {"accuracy": 0.5}
    rec = next(r for r in caplog.records if r.name == "pulsegate.alerts")
    assert rec.pulsegate_alert["subject"] == "m"  # structured extra field
    now[0] += 61
    assert mgr.raise_alert("accuracy", "m", "warning", "after cooldown") is not None


def test_callback_errors_are_counted_not_raised() -> None:
    faults = FaultCounter()

    def boom(alert):
        raise RuntimeError("x")

    mgr = AlertManager(wall=lambda: 1.0, faults=faults, callback=boom)
    mgr.raise_alert("degradation", "m", "warning", "msg")
    assert mgr.flush() == 1 and faults.total == 1


def test_webhook_receives_json_post() -> None:
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.headers["content-type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        mgr = AlertManager(wall=lambda: 5.0, faults=FaultCounter(), webhook=url)
        mgr.raise_alert("critical_anomaly", "GET /x", "critical", "slow", duration_ms=900.0)
        mgr.flush()
    finally:
        server.shutdown()
        server.server_close()
    ctype, payload = received[0]
    assert ctype == "application/json"
    assert payload["source"] == "pulsegate" and payload["kind"] == "critical_anomaly"
    assert payload["fields"]["duration_ms"] == 900.0


def test_a_webhook_that_never_answers_costs_one_timeout_a_flush_and_nothing_is_lost() -> None:
    """Before, each queued alert waited out its own timeout: 1 000 alerts to a dead
    webhook held the scheduler thread and ``gate.close()`` for 50 minutes."""
    import time
    from http.server import ThreadingHTTPServer

    received: list[str] = []
    down = threading.Event()
    down.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if down.is_set():
                time.sleep(1.0)  # a webhook that does not answer in time
                return
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body)["subject"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        faults = FaultCounter()
        mgr = AlertManager(wall=lambda: 5.0, faults=faults, webhook=url, webhook_timeout=0.2)
        for i in range(30):
            mgr.raise_alert("incident", f"GET /e{i}", "warning", "changed")
        began = time.perf_counter()
        assert mgr.flush() == 30  # all logged and handed to the callback at once
        assert time.perf_counter() - began < 0.9 and faults.total == 1
        down.clear()
        mgr.flush()  # the webhook is back: what waited is posted, oldest first
        assert received == [f"GET /e{i}" for i in range(30)]
    finally:
        server.shutdown()
        server.server_close()
