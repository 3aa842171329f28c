"""WSGI middleware (PEP 3333) for Flask, Django under a WSGI server, or any WSGI app.

    app.wsgi_app = PulseGateWSGIMiddleware(app.wsgi_app, gate=gate)   # Flask, by hand
    application = PulseGateWSGIMiddleware(application, gate=gate)    # anything else

Timeline of one request (the steps of a :class:`~pulsegate.cycle.RequestCycle`)::

    open -> app(environ, start_response') -> start_response' adds response_start's
         headers -> server iterates the body -> server calls close() -> close

* The ``x-ml-*`` headers are added in the wrapped ``start_response`` (time to headers).
  When the app calls it a second time with ``exc_info`` (an error after the headers
  were chosen, PEP 3333), the status is updated and the same pulsegate headers are
  appended again, never duplicated into the first list.
* The full duration ends when the body is complete: at once when the app returns a body
  it has already made whole (a list or tuple; the Flask middleware adds werkzeug's
  buffered responses), else when the body is exhausted or the server closes the response
  iterable, whichever comes first. The request is finished exactly once. So a
  streaming generator is measured to its last chunk, a client that disconnects
  mid-response still finishes the request (servers call ``close()`` then too), and a
  caller that reads the body but never calls ``close()`` -- werkzeug's and Flask's test
  client without ``buffered=True``, a careless server -- still has its requests learned.
* A body is passed on as cheaply as that allows. A complete body is returned *as is*:
  the request already ended, so there is nothing to notice or chain (the server closes
  it if it has a ``close``, and a one-item list keeps the ``len()`` that wsgiref derives
  ``Content-Length`` from). An instance of the server's own
  ``wsgi.file_wrapper`` is returned *as is*, only its ``close`` chained to ours, so the
  server keeps its ``sendfile`` fast path (it never iterates it in Python, and always
  closes it). Anything else -- streamed werkzeug and Flask responses, generators -- is
  wrapped in a generator of our own that finishes the request when it runs out.
* An error raised while the body is produced is the request's error (status 500 in
  the record, the response already started is untouched). A wrapped generator sees
  it directly; for the server's file wrapper it is the exception the server is handling
  when it closes the body (see ``_Exchange.close``). A complete body produces nothing
  more, and its own ``close()`` is the server's business with the app.
* A rejected request (429 / 503) gets the cycle's rejection response instead of the app.
* The dashboard and the Prometheus metrics path (when configured) are answered before
  anything is measured, as the ASGI middleware does: neither measured nor rate limited.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import chain
from types import TracebackType
from typing import Any

from pulsegate.adapter_setup import gate_for, prepare
from pulsegate.bounded import BoundedLRU
from pulsegate.config import Config
from pulsegate.cycle import CAPTURE, INTERNAL, PROCEED, REJECT, RequestCycle
from pulsegate.engine import PulseGate
from pulsegate.export.endpoints import serve_wsgi
from pulsegate.http import environ_header, environ_header_names, parse_status, status_line
from pulsegate.records import RequestInfo

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
#: Reads the route template from the environ, before or after the app ran.
RouteResolver = Callable[[Environ], "str | None"]
# RequestInfo(...) without its Python-level __new__: one is made per request
_new_tuple = tuple.__new__


class _Body:
    """A body that cannot take a chained ``close`` (a generator, a C iterator, a slotted
    or frozen object), passed through chunk by chunk; ``close()`` is the exchange's
    (which closes the app's iterable, then finishes the request). An exception raised
    while producing the body is recorded as the request's error, then re-raised."""

    __slots__ = ("_exchange", "_result")

    def __init__(self, result: Iterable[bytes], exchange: _Exchange) -> None:
        self._result = result
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        # With a Content-Length the request ends as its last byte is handed over (a
        # test client reads no further than that); without one, when the body runs
        # out, and the chunks then pass by ``yield from``: in C, no Python frame or
        # handler per chunk.
        exchange = self._exchange
        try:
            chunks = iter(self._result)
            for chunk in chunks:
                remaining = exchange.content_length()
                if remaining is None:
                    yield chunk
                    yield from chunks
                    break
                for chunk in chain((chunk,), chunks):  # noqa: B020 - the same stream
                    remaining -= len(chunk)
                    if remaining <= 0:
                        exchange.exhausted()
                    yield chunk
                break
        except GeneratorExit:  # the server stopped iterating; close() finishes
            raise
        except BaseException as exc:
            cycle = self._exchange._cycle
            if cycle is None:  # finished already
                raise
            cycle.error(exc)
            raise
        exchange.exhausted()

    def close(self) -> None:
        self._exchange.close()


class _Exchange:
    """One request, as the adapter sees it: ``start_response`` wrapped (the bound method
    the app is given), ``close`` (which finishes the request, chained to a body's own)
    and ``get`` (its request headers: the exchange is the request's
    ``RequestInfo.headers``).

    One object per request instead of a closure, its cells and a headers view.
    ``_cycle`` is the request's cycle while it is live and None once it finished;
    finishing lets go of it (its context refers back to the exchange through its
    headers): no reference cycle outlives the request. (None, not a deleted attribute:
    a caught ``AttributeError`` costs more than the rest of the adapter's step.)"""

    __slots__ = ("_close", "_cycle", "_environ", "_headers", "_server_start")
    _close: Callable[[], object] | None
    _cycle: RequestCycle | None
    _environ: Environ
    _headers: list[tuple[str, str]]
    _server_start: StartResponse

    def get(self, name: str, /) -> str | None:
        """The request header ``name`` (any case), or None."""
        return environ_header(self._environ, name)

    def names(self) -> list[str]:
        """The request's header names (see :func:`~pulsegate.http.environ_header_names`)."""
        return environ_header_names(self._environ)

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
        cycle = self._cycle
        if cycle is None:  # closed already (an app that breaks PEP 3333): pass on
            return self._server_start(status, headers, *(() if exc_info is None
                                                          else (exc_info,)))
        try:
            code = _CODES[status]  # an app sends the same few status lines
        except (KeyError, TypeError):
            code = _status_code(status)
        self._headers = headers  # the app's, for its Content-Length (see _Body)
        # (a second call, with exc_info: the error page replaces the response, and the
        # cycle gives the same headers again)
        added = cycle.response_start(code)
        if added:
            headers = headers + added
        if exc_info is None:
            return self._server_start(status, headers)
        return self._server_start(status, headers, exc_info)

    def close(self) -> None:
        """The server is done with the body: close the app's own iterable, then finish.

        A server closes the body while an exception is still propagating when
        iterating it failed (gunicorn, waitress, werkzeug and wsgiref call ``close()``
        in an ``except`` or ``finally`` block): that is the request's error, unless it
        is the connection's (an ``OSError``: the client went away), which is no fault
        of the request. A server that swallows the error before closing (uWSGI) leaves
        the request with the status it started with."""
        cycle = self._cycle
        close = self._close
        self._close = None  # the app's object and this one refer to each other
        if cycle is None:  # finished already (the body ran out) or closed twice
            if close is not None:  # the app's own close is still owed to it
                close()
            return
        # The request's context refers back to this exchange (its headers) and may
        # outlive the request (listeners, the query-sink variable): let go of it.
        self._cycle = None
        failure = _exception()
        try:
            if close is not None:
                close()
        except BaseException as exc:
            cycle.error(exc)
            raise
        finally:
            if failure is None or isinstance(failure, _NOT_THE_REQUESTS):
                cycle.close()
            else:
                cycle.error(failure)

    def exhausted(self) -> None:
        """The body ran out: finish the request now (the server's ``close()``, if it
        comes, then only closes the app's iterable). Once per request."""
        cycle = self._cycle
        if cycle is None:
            return
        self._cycle = None
        cycle.close()

    def content_length(self) -> int | None:
        """The response's Content-Length as the app set it, or None (also when spelt in
        an unusual case: the body then ends when it runs out, a little later)."""
        try:
            found = dict(self._headers)  # in C; frameworks spell it one of two ways
        except (AttributeError, TypeError, ValueError):
            return None
        value = found.get("Content-Length") or found.get("content-length")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None


_NOT_THE_REQUESTS = (OSError, GeneratorExit)


def _exc_info_exception() -> BaseException | None:
    return sys.exc_info()[1]


#: The exception being handled, if any (``sys.exception``, or its 3.10 equivalent).
_exception: Callable[[], BaseException | None] = getattr(sys, "exception", _exc_info_exception)

_CODES: BoundedLRU[str, int] = BoundedLRU(512)


def _status_code(status: str) -> int:
    """The code of a status line not seen before; a well-formed line is remembered
    (a bounded table: lines are few, but an app could make up reason phrases)."""
    code = parse_status(status)
    if type(status) is str and status[3:4] == " " and status[:3] == str(code):
        _CODES.put(status, code)
    return code


class PulseGateWSGIMiddleware:
    """Measure, score and (when configured) control every request of a WSGI app.

    ``route_resolver(environ)`` returns the route template ("/users/<id>"); it is asked
    once the app has started its response (frameworks that set the route themselves
    call ``pulsegate.context.current().set_route`` earlier and it is not asked at all).
    """

    def __init__(self, app: WSGIApp, gate: PulseGate | None = None,
                 config: Config | None = None, *,
                 route_resolver: RouteResolver | None = None, **options: Any) -> None:
        self.app = app
        self.gate = gate = gate_for(gate, config, options)
        self.route_resolver = route_resolver
        #: The dashboard and the Prometheus path (None when both are off: no cost).
        self.internal_endpoints = prepare(gate)
        #: Run once, before the first request is measured (subclasses' set-up chores).
        self.on_first_request: Callable[[], None] | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.on_first_request is not None:
            first, self.on_first_request = self.on_first_request, None
            first()
        resolver = self.route_resolver
        addr = environ.get("REMOTE_ADDR")
        exchange = _Exchange()
        exchange._environ = environ
        info = _new_tuple(RequestInfo, (  # every field, in order: no Python code runs
            environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "") or "/", None,
            addr if isinstance(addr, str) and addr else None, exchange,
            environ.get("QUERY_STRING", ""), environ.get("wsgi.url_scheme", "http"),
            None if resolver is None else partial(resolver, environ)))  # (in C: no frame)
        cycle = RequestCycle(self.gate, self.internal_endpoints)
        outcome = cycle.open(info)
        if outcome is PROCEED:
            return self._proceed(cycle, exchange, environ, start_response)
        if outcome is REJECT:
            return self._reject(cycle, start_response)
        if outcome is CAPTURE:  # the response cache learns the app's response
            capture = cycle.capture
            body = self._proceed(cycle, exchange, environ, capture.wsgi_start(start_response))
            return capture.wsgi_body(body, type(body) is list or self.body_is_complete(body))
        if outcome is INTERNAL and self.internal_endpoints is not None:
            # pulsegate's own endpoints: answered before anything is measured
            out = serve_wsgi(self.internal_endpoints, environ, start_response)
            if out is not None:
                return out
        return self.app(environ, start_response)

    @staticmethod
    def _reject(cycle: RequestCycle, start_response: StartResponse) -> list[bytes]:
        status = 500
        try:
            status, headers, body = cycle.rejection_response()
            start_response(status_line(status), headers)
        finally:
            cycle.close(status)
        return [body]

    @staticmethod
    def body_is_complete(result: Iterable[bytes]) -> bool:
        """Whether the app's body ``result`` is already whole when the app returns it, so
        that the request can finish then: a list or tuple. The server gets it as the app
        made it, a subclass with its own ``__iter__`` and ``close`` too (an error in
        those is then the server's, not recorded as the request's). The Flask middleware
        adds werkzeug's buffered responses."""
        return isinstance(result, (list, tuple))

    def _proceed(self, cycle: RequestCycle, exchange: _Exchange, environ: Environ,
                 start_response: StartResponse) -> Iterable[bytes]:
        """Call the app through the exchange, and pass its body on as cheaply as it
        allows (see the module's docstring)."""
        exchange._cycle = cycle
        exchange._server_start = start_response
        try:
            result = self.app(environ, exchange.start_response)
        except BaseException as exc:
            exchange._cycle = None  # (see _Exchange.close)
            cycle.error(exc)
            raise
        if type(result) is list or self.body_is_complete(result):
            # The whole body is in hand (the common case): the request ends here, and the
            # body goes to the server as the app made it -- nothing to notice or chain.
            exchange._cycle = None  # (see _Exchange.close)
            cycle.close()
            return result
        try:
            exchange._close = getattr(result, "close", None)
        except Exception as exc:  # a body whose attributes cannot be read (fail open)
            self.gate.faults.record("wsgi.body", exc)
            exchange._close = None
            return _Body(result, exchange)
        if type(result) is environ.get("wsgi.file_wrapper"):
            # The server's own file wrapper, returned as is, its close() leading to ours:
            # the server keeps its sendfile path, and closes the object it recognised.
            try:
                result.close = exchange.close  # type: ignore[attr-defined]
                return result
            except (AttributeError, TypeError):  # this object refused it after all
                pass
        return _Body(result, exchange)
