"""The request scope: one mutable :class:`RequestContext` per request, reachable from
anywhere in that request (ORM hooks, the app's own code) through a ContextVar.

ContextVars follow the request across ``await``, into ``run_in_threadpool`` (which
copies the context) and stay separate per thread under WSGI -- which is why the
SQL hooks find the right request without any framework help.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulsegate.queries.events import QueryEvent
    from pulsegate.records import RequestInfo


class QuerySink(Protocol):
    """Anything that collects the SQL statements run in its scope. A ``finished`` sink
    takes no more: the hooks skip it (a finished request stays in the variable until
    the next one replaces it). ``call_sites``: whether the hooks find each statement's
    application call site for it (the gate's ``capture_call_sites``: a setting of the
    sink, so two gates in one process keep their own)."""

    finished: bool
    call_sites: bool

    def add_query(self, event: QueryEvent) -> None: ...


class EnteredSink(QuerySink, Protocol):
    """A sink that put itself in :data:`query_sink` and holds the token (a request, a
    unit run, a job's run): what :func:`leave` lets go of."""

    token: contextvars.Token[QuerySink | None] | None


#: The innermost collector of SQL events: the request being served, or a ``capture()``
#: block (which knows the request it runs in). One variable for both, so a request pays
#: a single set; :func:`current` finds the request through it. A request is not reset
#: out of it when it finishes unless a live sink was there before (see :func:`leave`):
#: readers skip a sink whose ``finished`` is true.
query_sink: contextvars.ContextVar[QuerySink | None] = contextvars.ContextVar(
    "pulsegate_query_sink", default=None
)


class Rejection:
    """A response pulsegate produces instead of calling the app (429 throttle, 503 shed,
    a response cache hit). ``proceed`` is true only for the response cache's
    :class:`~pulsegate.respcache.Capture`: the app runs, and its response is captured."""

    __slots__ = ("body", "content_type", "headers", "reason", "status")
    proceed = False

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]],
                 body: bytes = b"", content_type: str = "text/plain; charset=utf-8") -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.content_type = content_type


#: The detections of a request without any (shared: replaced, never mutated).
NO_DETECTIONS: list[Any] = []


class RequestContext:
    """Everything pulsegate knows about one in-flight request.

    Created by :meth:`pulsegate.engine.PulseGate.start`; the request cycle hands it back
    at response start and at the end. Written by the engine, the request cycle (the
    route, the error), the controller (the client key, the optimization, the allocator
    ticket) and the hooks (queries, headers, ``set_endpoint``).
    """

    # ``io``: the request's cache and outbound tally (pulsegate.io_tally), set only by
    # those hooks on first use and read with getattr(ctx, "io", None): never initialised
    # here, so requests that make no instrumented call pay nothing for it.
    __slots__ = ("call_sites", "client_key", "cpu0", "detections", "error", "extra_headers",
                 "finished", "info", "io", "max_queries", "mem0", "model", "optimization",
                 "priority", "queries", "query_count", "query_ms", "route",
                 "score", "start", "status", "ticket", "token",
                 "ttfb")
    io: Any  # the I/O tally (see the comment above): no default, never initialised here

    def __init__(self, info: RequestInfo, start: float, cpu0: float | None, mem0: int | None,
                 max_queries: int, call_sites: bool = True) -> None:
        self.info = info
        self.call_sites = call_sites
        self.route: str | None = info.route
        #: The gate's clock when the request began (its record's wall time is derived).
        self.start = start
        self.cpu0 = cpu0
        self.mem0 = mem0
        self.max_queries = max_queries
        self.ttfb: float | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.queries: list[QueryEvent] | None = None
        self.query_count = 0
        self.query_ms = 0.0
        self.detections: list[Any] = NO_DETECTIONS  # replaced, never mutated
        self.score: Any = None
        #: The endpoint's model (its ``key`` names the endpoint), looked up once at
        #: response start.
        self.model: Any = None
        self.optimization = "none"
        self.priority = "normal"
        self.client_key: str | None = None
        self.ticket: Any = None
        self.extra_headers: list[tuple[str, str]] | None = None
        self.finished = False
        self.token: contextvars.Token[QuerySink | None] | None = None

    def add_query(self, event: QueryEvent) -> None:
        self.query_count += 1
        self.query_ms += event.duration_ms
        queries = self.queries
        if queries is None:
            self.queries = [event]
        elif len(queries) < self.max_queries:
            queries.append(event)

    def add_header(self, name: str, value: str) -> None:
        """A header to send with the response (rate-limit fields and the like).

        Every header pulsegate sends is checked where it is made, so adapters can write
        the pairs straight into the framework's header store: the name is stored
        lower-cased, and a name that is not a printable ASCII token or a value that is
        not printable ASCII (CR, LF, any control character) is a ValueError."""
        if not (name and name.isascii() and name.isprintable()) or " " in name or ":" in name:
            raise ValueError(f"invalid header name {name!r}")
        if not (value.isascii() and value.isprintable()):
            raise ValueError(f"invalid value for header {name!r}: {value!r}")
        name = name.lower()
        if self.extra_headers is None:
            self.extra_headers = [(name, value)]
        else:
            self.extra_headers.append((name, value))

    def settle_status(self, status: int | None, error: BaseException | None) -> int:
        """The request's final status, at its end: ``status`` if given, else the one
        sent; an ``error`` (named in ``self.error``) makes it 500 unless a 5xx was sent;
        a request that sent nothing is a 500."""
        if error is not None:
            self.error = type(error).__name__
            status = 500 if self.status is None or self.status < 500 else self.status
        if status is not None:
            self.status = status
        return self.status if self.status is not None else 500

    def set_route(self, route: str | None) -> None:
        """Adapters call this once routing has resolved the template."""
        if route is not None:
            self.route = route

    @property
    def method(self) -> str:
        return self.info.method


class PassThroughContext(RequestContext):
    """A request whose SQL is not analysed (``query_analysis=False``): it is still the
    current request, but hands every statement on to the sink it replaced, as if it
    were not there (a ``capture()`` around it still sees them)."""

    __slots__ = ("outer",)
    outer: QuerySink | None

    def add_query(self, event: QueryEvent) -> None:
        outer = self.outer
        if outer is not None and not outer.finished:
            outer.add_query(event)


_UNSET = contextvars.Token.MISSING  # a token's old value when the variable was unset


#: Called with each sink as it ends (a request, a unit run, a ``capture()`` block), in its
#: context: what an ORM hook kept for that sink lets go (django/origins.py: the results
#: fetched whole, not yet tagged) -- else an idle thread would keep its last request's
#: rows. Must not raise; empty unless such a hook is installed.
sink_ended: list[Callable[[QuerySink], None]] = []


def leave(ctx: EnteredSink) -> None:
    """The finished request ``ctx`` lets go of the query-sink variable (and the ORM hooks
    of what they kept for it: :data:`sink_ended`).

    It stays there, ignored (``finished``), until the next request in this context
    replaces it: a reset costs as much as the set, and after a request there is usually
    nothing to go back to (a new thread or task context, or the request before, finished
    too). A live sink around it (a ``capture()`` block, an outer request) is put back."""
    for release in sink_ended:
        release(ctx)
    token = ctx.token
    if token is None:
        return
    ctx.token = None  # it holds the sink before: keep no chain of requests
    outer = token.old_value
    if outer is not _UNSET and outer is not None and not outer.finished:
        try:
            query_sink.reset(token)
        except ValueError:  # made in another context (a body closed by another
            pass            # thread): that context simply ends


def current() -> RequestContext | None:
    """The request being served in this context, or None."""
    sink = query_sink.get()
    if sink is None or isinstance(sink, RequestContext):
        return None if sink is None or sink.finished else sink
    request: RequestContext | None = getattr(sink, "request", None)
    return None if request is None or request.finished else request


#: Longest endpoint name :func:`set_endpoint` takes (endpoint names are map keys).
MAX_ENDPOINT_NAME = 200


def set_endpoint(name: str) -> bool:
    """Name the endpoint of the request being served, in place of its route template.

    For apps whose router cannot tell pages apart: a CMS serves every page through one
    catch-all route (Wagtail's ``GET /((?:[\\w\\-]+/)*)``), so every page type would
    share one endpoint model and a regression on one type would be invisible. Call it
    from the view, a framework hook or a middleware -- before the response starts, since
    the endpoint's model is chosen then -- on any framework (the request is found through
    its ContextVar). The endpoint is ``"<METHOD> <name>"``, as for a route template, so
    keep the number of names bounded (a page *type*, not a page).

    Returns True if the name was set; False outside a request, or once the response
    has started. A name that is not a non-empty printable string of at most
    :data:`MAX_ENDPOINT_NAME` characters raises ValueError."""
    if not isinstance(name, str) or not name or len(name) > MAX_ENDPOINT_NAME \
            or not name.isprintable():
        raise ValueError(f"pulsegate.set_endpoint: invalid endpoint name {name!r} "
                         f"(a non-empty printable string of at most {MAX_ENDPOINT_NAME} characters)")
    ctx = current()
    if ctx is None or ctx.status is not None:
        return False
    ctx.route = name
    return True
