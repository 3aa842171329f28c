"""httpx (sync and async) and requests, reported to the :class:`OutboundMonitor` s that
asked: the transport-level calls OpenTelemetry's instrumentors wrap too.

* httpx: ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``
  -- every ``httpx.Client`` / ``AsyncClient`` on the default transport; the time is to
  the response headers (the body is read by the client afterwards, or streamed);
* requests: ``Session.send`` -- every ``requests.get(...)`` and session call; the time
  includes reading the body unless ``stream=True``.

A call's outcome: ``success`` (a response below 500), ``failure`` (a 5xx), ``timeout``
(httpx's ``TimeoutException``, requests' ``Timeout``) or ``error`` (any other
exception). The URL is reported as :func:`pulsegate.outbound.urls.upstream_of` makes
it (no query string, no user information), or with the route named by
:func:`pulsegate.outbound.route`. The call itself is untouched: its response or
exception reaches the caller as before, and a fault in the counting is recorded in the
gate's fault counter and ignored.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.outbound.monitor import OutboundMonitor
from pulsegate.outbound.urls import fold_path, upstream_label, upstream_of

__all__ = ["current_route", "instrument_httpx", "instrument_requests", "instrument_transport",
           "uninstrument"]

_perf = time.perf_counter
#: The route template the caller named for the calls in its scope (None: fold the path).
current_route: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pulsegate_outbound_route", default=None)
#: The monitors every instrumented client reports to.
MONITORS: list[OutboundMonitor] = []
_ORIGINALS: dict[tuple[type, str], Any] = {}
#: URL -> (upstream, route): most calls go to a few URLs, and parsing one costs more
#: than the rest of the hook. Bounded; read without a lock (a dict read is atomic),
#: written under one. Never reported: only the values are.
_WHERE: BoundedLRU[str, tuple[str, str]] = BoundedLRU(2048)
#: Longest URL kept as a key of ``_WHERE``: its memory is bounded whatever the URLs.
MAX_REMEMBERED = 1024
_WHERE_LOCK = threading.Lock()


def _report(monitors: list[OutboundMonitor], where: tuple[str, str], elapsed: float,
            status: int | None, outcome: str) -> None:
    named = current_route.get()
    upstream, route = where
    for monitor in monitors:
        try:
            monitor.call(upstream, named or route, elapsed, status, outcome)
        except Exception as exc:
            faults = getattr(monitor.gate, "faults", None)
            if faults is not None:
                faults.record("outbound", exc)


def _remember(url: str, where: tuple[str, str]) -> tuple[str, str]:
    if len(url) <= MAX_REMEMBERED:  # a longer URL (data in its query) is parsed each time
        with _WHERE_LOCK:
            _WHERE.put(url, where)
    return where


def _httpx_where(request: Any) -> tuple[str, str]:
    url = request.url
    raw = str(url)
    where = _WHERE.get(raw)
    if where is None:
        where = _remember(raw, (upstream_label(url.scheme, url.host, url.port),
                                fold_path(url.path)))
    return where


def _url_where(url: str) -> tuple[str, str]:
    where = _WHERE.get(url)
    if where is None:
        where = _remember(str(url), upstream_of(str(url)))
    return where


def _httpx_outcome(exc: BaseException) -> str:
    import httpx

    return "timeout" if isinstance(exc, httpx.TimeoutException) else "error"


def _wrap_httpx_sync(original: Any, monitors: list[OutboundMonitor] = MONITORS) -> Any:
    def handle_request(self: Any, request: Any) -> Any:
        if not monitors:
            return original(self, request)
        t0 = _perf()
        try:
            response = original(self, request)
        except Exception as exc:
            _httpx_failed(monitors, request, _perf() - t0, exc)
            raise
        _httpx_answered(monitors, request, _perf() - t0, response)
        return response

    handle_request.__wrapped__ = original  # type: ignore[attr-defined]
    return handle_request


def _httpx_failed(monitors: list[OutboundMonitor], request: Any, elapsed: float,
                  exc: BaseException) -> None:
    """An httpx call that raised (the sync and async transports alike)."""
    outcome = _httpx_outcome(exc)
    _safely(lambda: _report(monitors, _httpx_where(request), elapsed, None, outcome))


def _httpx_answered(monitors: list[OutboundMonitor], request: Any, elapsed: float,
                    response: Any) -> None:
    """An httpx call that got a response: a 5xx is a failure."""
    try:
        status = response.status_code
        _report(monitors, _httpx_where(request), elapsed, status,
                "failure" if status >= 500 else "success")
    except Exception as exc:
        _fault(exc)


def _wrap_httpx_async(original: Any, monitors: list[OutboundMonitor] = MONITORS) -> Any:
    async def handle_async_request(self: Any, request: Any) -> Any:
        if not monitors:
            return await original(self, request)
        t0 = _perf()
        try:
            response = await original(self, request)
        except Exception as exc:
            _httpx_failed(monitors, request, _perf() - t0, exc)
            raise
        _httpx_answered(monitors, request, _perf() - t0, response)
        return response

    handle_async_request.__wrapped__ = original  # type: ignore[attr-defined]
    return handle_async_request


def _wrap_requests(original: Any) -> Any:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not MONITORS:
            return original(self, request, **kwargs)
        t0 = _perf()
        try:
            response = original(self, request, **kwargs)
        except Exception as exc:
            elapsed = _perf() - t0
            import requests

            outcome = "timeout" if isinstance(exc, requests.Timeout) else "error"
            _safely(lambda: _report(MONITORS, _url_where(str(request.url)), elapsed, None,
                                    outcome))
            raise
        elapsed = _perf() - t0
        try:
            status = response.status_code
            _report(MONITORS, _url_where(request.url), elapsed, status,
                    "failure" if status >= 500 else "success")
        except Exception as exc:
            _fault(exc)
        return response

    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


def _fault(exc: Exception) -> None:
    """A fault in the counting (a URL that could not be read): counted, never raised."""
    for monitor in MONITORS[:1]:
        faults = getattr(monitor.gate, "faults", None)
        if faults is not None:
            faults.record("outbound", exc)


def _safely(fn: Any) -> None:
    try:
        fn()
    except Exception as exc:
        _fault(exc)


def _patch(cls: type, attr: str, factory: Any) -> None:
    if (cls, attr) in _ORIGINALS:
        return
    original = cls.__dict__[attr]
    _ORIGINALS[(cls, attr)] = original
    setattr(cls, attr, factory(original))


def instrument_httpx(monitor: OutboundMonitor) -> None:
    """Report httpx's calls (sync and async clients) to ``monitor``."""
    import httpx

    if monitor not in MONITORS:
        MONITORS.append(monitor)
    _patch(httpx.HTTPTransport, "handle_request", _wrap_httpx_sync)
    _patch(httpx.AsyncHTTPTransport, "handle_async_request", _wrap_httpx_async)


def instrument_requests(monitor: OutboundMonitor) -> None:
    """Report requests' calls to ``monitor``."""
    import requests

    if monitor not in MONITORS:
        MONITORS.append(monitor)
    _patch(requests.Session, "send", _wrap_requests)


def instrument_transport(monitor: OutboundMonitor, transport: Any) -> Any:
    """Report the calls through one httpx transport (``httpx.HTTPTransport`` or
    ``AsyncHTTPTransport``, given to a client as ``transport=``) to ``monitor`` only;
    returns the transport."""
    import httpx

    own = [monitor]
    if isinstance(transport, httpx.AsyncBaseTransport):
        original = type(transport).handle_async_request
        original = _ORIGINALS.get((type(transport), "handle_async_request"), original)
        wrapped = _wrap_httpx_async(original, own)
        transport.handle_async_request = wrapped.__get__(transport)  # type: ignore[method-assign]
    else:
        original = type(transport).handle_request
        original = _ORIGINALS.get((type(transport), "handle_request"), original)
        wrapped = _wrap_httpx_sync(original, own)
        transport.handle_request = wrapped.__get__(transport)  # type: ignore[method-assign]
    return transport


def uninstrument(monitor: OutboundMonitor | None = None) -> None:
    """Stop reporting to ``monitor`` (None: to any, and restore the libraries)."""
    if monitor is not None and monitor in MONITORS:
        MONITORS.remove(monitor)
    if monitor is None or not MONITORS:
        MONITORS.clear()
        for (cls, attr), original in list(_ORIGINALS.items()):
            setattr(cls, attr, original)
        _ORIGINALS.clear()
