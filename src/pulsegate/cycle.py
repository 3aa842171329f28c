"""One request's trip through a gate, written once for every adapter (sans-IO).

The adapters (ASGI, WSGI and Flask, Django) turn their framework's events into the
steps of a :class:`RequestCycle` and do the I/O themselves, the way httpx's
``auth_flow`` drives both of its clients::

    cycle = RequestCycle(gate, endpoints)       # endpoints = internal_endpoints(gate)
    outcome = cycle.open(info)                 # or: await cycle.open_async(info)
    if outcome is PASS:                        # gate off, or an excluded path
        call the app untouched
    elif outcome is INTERNAL:                  # the dashboard or the metrics path
        answer through endpoints (never measured, never rate limited)
    elif outcome is REJECT:                    # 429 throttle, 503 shed, a cache hit
        send cycle.rejection_response(), then cycle.close()
    elif outcome is CAPTURE:                   # the response cache wants the response
        as PROCEED, handing the response to cycle.capture (pulsegate.respcache.capture)
    else:                                      # PROCEED
        call the app;
        headers = cycle.response_start(status) # when the response starts: add them
        cycle.error(exc)                       # the app raised exc
        cycle.close()                          # after the last body chunk; idempotent

The cycle decides; the adapter only translates. It owns the order of the checks
(internal endpoints, then ``enabled`` and ``exclude_paths``), the admission call, the
route at response start (the adapter's ``RequestInfo.route_resolver`` is asked when
routing has not named the route yet) and the error. Nothing here raises into the app:
a fault is counted by the gate and the request proceeds as if pulsegate were absent.

An exception the framework turns into an error page itself (Django's and Flask's
``got_request_exception``) never reaches the adapter: :func:`record_view_error` names
it as the request's error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pulsegate.context import Rejection, RequestContext, current

if TYPE_CHECKING:
    from pulsegate.engine import PulseGate
    from pulsegate.export.endpoints import InternalEndpoints
    from pulsegate.records import RequestInfo
    from pulsegate.respcache.capture import Capture

#: The outcomes of :meth:`RequestCycle.open` (compare with ``is``).
PASS: Final = "pass"
INTERNAL: Final = "internal"
REJECT: Final = "reject"
PROCEED: Final = "proceed"
CAPTURE: Final = "capture"

#: Content type of the small plain-text bodies pulsegate itself sends (429 / 503).
REJECTION_CONTENT_TYPE = "text/plain; charset=utf-8"

Headers = list[tuple[str, str]]


class RequestCycle:
    """The steps of one request through ``gate``: open, response start, error, close.

    ``endpoints`` are the gate's own (dashboard, metrics: see
    :func:`pulsegate.export.endpoints.internal_endpoints`, which an adapter asks once);
    ``ctx`` is the measured request (None unless the outcome is PROCEED or REJECT) and
    ``rejection`` the response to send instead of the app (REJECT only)."""

    __slots__ = ("ctx", "endpoints", "gate", "outcome", "rejection")

    def __init__(self, gate: PulseGate, endpoints: InternalEndpoints | None = None) -> None:
        self.gate = gate
        self.endpoints = endpoints
        self.ctx: RequestContext | None = None
        self.outcome: str = PASS
        self.rejection: Rejection | None = None

    # --- open ---------------------------------------------------------------------------

    def open(self, info: RequestInfo) -> str:
        """Decide what becomes of the request (blocking admission: threads, WSGI)."""
        ctx = self._enter(info)
        if ctx is None or self.gate.control is None:
            return self.outcome
        return self._admitted(self.gate.admit(ctx))

    async def open_async(self, info: RequestInfo) -> str:
        """:meth:`open` for asyncio: admission waits without a thread."""
        ctx = self._enter(info)
        if ctx is None or self.gate.control is None:
            return self.outcome
        return self._admitted(await self.gate.admit_async(ctx))

    def _enter(self, info: RequestInfo) -> RequestContext | None:
        """Everything of :meth:`open` but admission: an internal endpoint, a request
        passed through, or a measured one (its context, returned)."""
        endpoints = self.endpoints
        if endpoints is not None and endpoints.matches(info.path):
            self.outcome = INTERNAL
            return None
        if self.gate.ignores(info.path):
            return None
        ctx = self.ctx = self.gate.start(info)
        if ctx is not None:  # (None: a fault, fail open)
            self.outcome = PROCEED
        return ctx

    def _admitted(self, rejection: Rejection | None) -> str:
        if rejection is None:
            return PROCEED
        self.rejection = rejection
        self.outcome = CAPTURE if rejection.proceed else REJECT
        return self.outcome

    @property
    def capture(self) -> Capture:
        """The response cache's capture (the CAPTURE outcome only)."""
        return self.rejection  # type: ignore[return-value]

    # --- the response -------------------------------------------------------------------

    def response_start(self, status: int, route: str | None = None) -> Headers:
        """The response starts with ``status``: name the route (``route``, else the
        info's resolver, unless something named it already), score the request so far
        and return the headers to add -- protocol fields (rate limits) first, then
        ``x-ml-*``. A second call (WSGI's ``start_response`` with ``exc_info``: an error
        page replaces the response) changes the status and returns the same headers."""
        ctx = self.ctx
        if ctx is None:
            return []
        if ctx.status is not None:
            ctx.status = status
            return ctx.extra_headers or []
        if ctx.route is None:
            self._name_route(ctx, route)
        return self.gate.response_headers(ctx, status)

    def rejection_response(self) -> tuple[int, Headers, bytes]:
        """Status, complete header list and body to send for a REJECT outcome: the
        rejection's own headers (``Retry-After``, ``RateLimit``...), the ``x-ml-*`` ones,
        then ``content-length`` and ``content-type``. The app never ran, so the route
        is resolved here, and the request is counted against its endpoint; the adapter
        still calls :meth:`close` once the body is out."""
        rejection, ctx = self.rejection, self.ctx
        if rejection is None or ctx is None:
            raise RuntimeError("rejection_response() outside a REJECT outcome")
        extra = self.response_start(rejection.status)
        headers = [*rejection.headers, *extra,
                   ("content-length", str(len(rejection.body))),
                   ("content-type", rejection.content_type)]
        # A HEAD response says the body's length and sends none (RFC 9110 9.3.2).
        return rejection.status, headers, b"" if ctx.info.method == "HEAD" else rejection.body

    def error(self, exc: BaseException, route: str | None = None) -> None:
        """The app raised ``exc``: the request ends here, as an error (status 500 unless
        a 5xx had been sent). ``route`` as for :meth:`response_start`."""
        ctx = self.ctx
        if ctx is None or ctx.finished:
            return
        if ctx.route is None:
            self._name_route(ctx, route)
        self.gate.finish(ctx, error=exc)

    def close(self, status: int | None = None) -> None:
        """The response is over (its last chunk sent, or the connection gone): learn
        from the request. ``status`` replaces the one sent, if any (a response that
        never started counts as 500). Idempotent."""
        ctx = self.ctx
        if ctx is not None and not ctx.finished:
            self.gate.finish(ctx, status, None, False)

    def _name_route(self, ctx: RequestContext, route: str | None) -> None:
        """Name the request's route: ``route`` as the adapter read it, else what the
        info's resolver says (a fault is counted, and the route stays unnamed)."""
        if route is None and ctx.info.route_resolver is not None:
            try:
                route = ctx.info.route_resolver()
            except Exception as exc:
                self.gate.faults.record("route resolver", exc)
        if route is not None:
            ctx.route = route


def record_view_error(exc: BaseException | None) -> None:
    """The framework turned an exception of the view into an error page itself (Django's
    and Flask's ``got_request_exception``): name it as the error of the request being
    served, which then ends as usual with the status of that page."""
    ctx = current()
    if ctx is not None and exc is not None:
        ctx.error = type(exc).__name__
