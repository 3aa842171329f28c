"""Alerts: logged on ``pulsegate.alerts`` and handed to an optional callable/webhook.

Four conditions raise one:

* ``accuracy``: a model's accuracy over its last 100 labels fell under its target;
* ``degradation``: its F1 (or accuracy when F1 is undefined) fell by at least
  ``degradation_threshold`` (5 % by default, relative) against the baseline measured
  when its current version first had enough labels;
* ``critical_anomaly``: a request scored at or above ``alert_critical_score`` (off by
  default: one unusual request does not page);
* ``incident``: an incident (windowed shift, error burst) was opened on an endpoint.

``raise_alert`` only appends to a bounded queue (it is called from the request path for
critical anomalies): logging, the callable and the webhook POST all happen in
:meth:`AlertManager.flush`, which runs on the scheduler thread. A repeat of the same
(kind, model/endpoint) within ``cooldown`` seconds is counted, not re-sent.

A webhook that is down costs one timeout a flush, not one per alert: a flush stops
posting at the first failure and keeps that alert and the ones after it for the next
flush (at most ``capacity``, the oldest let go and counted as ``webhook_dropped``).
Before, 1 000 queued alerts to a webhook that never answers held the scheduler thread --
and ``gate.close()`` at shutdown -- for 1 000 timeouts (50 minutes at 3 s).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pulsegate.faults import FaultCounter

logger = logging.getLogger("pulsegate.alerts")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass
class Alert:
    kind: str
    subject: str
    severity: str
    message: str
    at: float
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlertManager:
    def __init__(self, *, wall: Callable[[], float], faults: FaultCounter,
                 callback: Callable[[Alert], object] | None = None,
                 webhook: str | None = None, cooldown: float = 300.0,
                 capacity: int = 1000, webhook_timeout: float = 3.0) -> None:
        self.wall = wall
        self.faults = faults
        self.callback = callback
        self.webhook = webhook
        self.cooldown = cooldown
        self.webhook_timeout = webhook_timeout
        self.recent: deque[Alert] = deque(maxlen=capacity)
        self.suppressed = 0
        self._pending: deque[Alert] = deque(maxlen=capacity)
        #: logged and handed to the callback, not yet posted to the webhook
        self._unposted: deque[Alert] = deque()
        self.capacity = capacity
        self.webhook_dropped = 0
        self._last: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def raise_alert(self, kind: str, subject: str, severity: str, message: str,
                    **fields: Any) -> Alert | None:
        """Queue an alert (cheap; no I/O). None when suppressed by the cooldown."""
        now = self.wall()
        key = (kind, subject)
        with self.lock:
            last = self._last.get(key)
            if last is not None and now - last < self.cooldown:
                self.suppressed += 1
                return None
            self._last[key] = now
            if len(self._last) > 4096:
                self._last = {k: t for k, t in self._last.items() if now - t < self.cooldown}
            alert = Alert(kind, subject, severity, message, now, fields)
            self._pending.append(alert)
        return alert

    def flush(self) -> int:
        """Deliver queued alerts (scheduler thread): log and callable for each, then the
        webhook until its first failure. Returns the alerts delivered (logged)."""
        sent = 0
        while True:
            with self.lock:
                if not self._pending:
                    break
                alert = self._pending.popleft()
            self.recent.append(alert)
            logger.log(_LEVELS.get(alert.severity, logging.WARNING), "%s", alert.message,
                       extra={"pulsegate_alert": alert.to_dict()})
            if self.callback is not None:
                try:
                    self.callback(alert)
                except Exception as exc:
                    self.faults.record("alert callback", exc)
            if self.webhook:
                self._unposted.append(alert)
            sent += 1
        self._post_unposted()
        return sent

    @property
    def unposted(self) -> int:
        """Alerts logged but not yet posted to the webhook (it failed; next flush)."""
        return len(self._unposted)

    def _post_unposted(self) -> None:
        """POST the alerts not yet posted, oldest first, until one fails: it and the rest
        wait for the next flush (a webhook down costs one timeout a flush)."""
        unposted = self._unposted
        while len(unposted) > self.capacity:
            unposted.popleft()
            self.webhook_dropped += 1
        while unposted:
            try:
                self._post(unposted[0])
            except Exception as exc:
                self.faults.record("alert webhook", exc)
                return
            unposted.popleft()

    def _post(self, alert: Alert) -> None:
        assert self.webhook is not None
        body = json.dumps({"source": "pulsegate", **alert.to_dict()}, default=str).encode()
        req = urllib.request.Request(self.webhook, data=body, method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.webhook_timeout) as resp:
            resp.read()
