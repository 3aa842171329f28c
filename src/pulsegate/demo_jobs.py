"""The demo's background jobs (issue 21): a producer thread enqueues a receipt job every
200 ms with its publish time, and a worker thread runs them under
:func:`pulsegate.jobs.observe_job` -- its queue wait from the publish time, and an N+1
inside the job (one ``reviews`` query per book) reported against ``JOB
demo.send_receipt`` with its fix. Imported by the demo only."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from pulsegate.engine import PulseGate
from pulsegate.jobs import observe_job, tracker_of

__all__ = ["DemoJobs", "print_jobs"]

JOB = "demo.send_receipt"


class DemoJobs:
    """Start with :meth:`start`, end with :meth:`stop` (both threads are daemons)."""

    def __init__(self, gate: PulseGate, db: Path) -> None:
        self.gate = gate
        self.engine = create_engine(f"sqlite:///{db}")
        self.queue: queue.Queue[float] = queue.Queue()
        self.stopped = threading.Event()

    def start(self) -> DemoJobs:
        for target in (self._produce, self._work):
            threading.Thread(target=target, name=f"demo-{target.__name__}", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _produce(self) -> None:
        while not self.stopped.wait(0.2):
            self.queue.put(time.time())

    def _work(self) -> None:
        while not self.stopped.is_set():
            try:
                published = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            wait_ms = (time.time() - published) * 1000.0
            with observe_job(JOB, gate=self.gate, queue_wait_ms=wait_ms), \
                    self.engine.connect() as conn:
                for book in range(1, 7):  # the N+1: one query per book
                    conn.execute(text("SELECT stars FROM reviews WHERE book_id = :b"),
                                 {"b": book}).all()


def print_jobs(gate: PulseGate) -> None:
    """One line per job name: runs, forecast, last wait; its query problems and fix."""
    names = tracker_of(gate).stats()["names"]
    for name, row in names.items():
        model = gate.baselines.peek(f"JOB {name}")
        forecast = model.predict()[0] if model is not None else None
        runs = sum(row["outcomes"].values())
        print(f"job {name}: {runs} runs, forecast {forecast or 0:.1f} ms, last queue wait "
              f"{row['last_wait_ms'] or 0:.2f} ms, retries {row['retries']}")
        for d in [d for d in list(gate.detections) if d.get("endpoint") == f"JOB {name}"][:1]:
            print(f"  {d.get('kind')} inside the job: {d.get('count')} statements, "
                  f"fix: {d.get('suggestion')}")
