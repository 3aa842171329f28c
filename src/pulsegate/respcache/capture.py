"""Handing the app's response to the cache: the smallest thing each adapter can call.

A :class:`Capture` is admission's third answer (beside "proceed" and a
:class:`~pulsegate.context.Rejection`): the request cycle's ``CAPTURE`` outcome, "call
the app, and give me what it answered". It is a ``Rejection`` only so that it travels
the same path (``proceed`` is true: the app runs). The adapter hands it the response:

* ASGI: ``send = capture.asgi_send(send)`` (the messages pass unchanged);
* WSGI: ``start_response = capture.wsgi_start(start_response)`` and
  ``body = capture.wsgi_body(body, complete)`` (a complete body read at once, a
  stream passed on as it comes; learnt when it ends within ``max_body`` bytes, a
  longer one never cached);
* any other: ``capture.done(status, headers, body)`` (Django: ``response.content``).

A :class:`Finishing` (a write, with the shared store) has the same four methods: its
response passes unchanged, and under ASGI its last body chunk waits -- awaited, the
event loop free -- for the write's finishing invalidation. Django calls its
:meth:`~Finishing.finish` (WSGI, blocking in the request's thread) or
:meth:`~Finishing.finish_async` (ASGI, awaited) once the view returned, before the
response goes back to the server.

``done`` never raises: a fault of the cache is counted and the response goes out as
the app made it (fail open).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, Protocol

from pulsegate.context import Rejection, RequestContext

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class Learner(Protocol):
    """What a capture hands the response to (the :class:`~.cache.ResponseCache`)."""

    max_body: int
    gate: Any

    def learn(self, capture: Capture, status: int, headers: list[tuple[str, str]],
              body: bytes | None) -> None: ...

    async def finish_write(self, ctx: RequestContext) -> None: ...

    def finish_write_now(self, ctx: RequestContext) -> None: ...


class Capture(Rejection):
    """Proceed, and hand the response to the cache (see the module's docstring)."""

    __slots__ = (
        "_headers",
        "_status",
        "cache",
        "ctx",
        "endpoint",
        "generation",
        "key",
        "path",
        "refresh",
    )
    proceed = True

    def __init__(self, cache: Learner, ctx: RequestContext, key: bytes, endpoint: str,
                 path: str, generation: int, refresh: bool) -> None:
        super().__init__(0, "capture", [])
        self.cache = cache
        self.ctx = ctx
        self.key = key
        self.endpoint = endpoint
        self.path = path
        self.generation = generation
        self.refresh = refresh
        self._status = 0
        self._headers: list[tuple[str, str]] = []

    def done(self, status: int, headers: list[tuple[str, str]], body: bytes | None) -> None:
        """The app answered ``status``, ``headers`` and ``body`` (None: not captured
        whole). Learnt, and stored if the route is worth it; never raises."""
        try:
            self.cache.learn(self, status, headers, body)
        except Exception as exc:
            self.cache.gate.faults.record("respcache.learn", exc)

    # --- ASGI ---------------------------------------------------------------------------

    def asgi_send(self, send: Send) -> Send:
        limit = self.cache.max_body
        chunks: list[bytes] = []
        size = 0

        async def capturing_send(message: Message) -> None:
            nonlocal size
            kind = message.get("type")
            if kind == "http.response.start":
                self._status = int(message.get("status", 0))
                self._headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                                 for k, v in message.get("headers") or ()]
            elif kind == "http.response.body" and size >= 0:
                body = message.get("body", b"")
                size += len(body)
                if size > limit:
                    size = -1
                    chunks.clear()
                else:
                    chunks.append(bytes(body))
                if not message.get("more_body", False):
                    self.done(self._status, self._headers,
                              None if size < 0 else b"".join(chunks))
            await send(message)

        return capturing_send

    # --- WSGI ---------------------------------------------------------------------------

    def wsgi_start(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        def capturing_start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            try:
                self._status = int(str(status)[:3])
            except ValueError:
                self._status = 0
            self._headers = list(headers)
            return start_response(status, headers, *exc)

        return capturing_start

    def wsgi_body(self, body: Iterable[bytes], complete: bool = False) -> Iterable[bytes]:
        """``body`` passed on: read at once when it is ``complete`` (already whole: a
        list, Flask's buffered response) and learnt then; a stream chunk by chunk as
        the app makes it (it reaches the client as it comes), learnt when it ends
        within ``max_body`` bytes, never when it goes past them or is not read to its
        end. The result closes ``body`` when the server closes it."""
        if not complete:
            return _Passed(self, body)
        try:
            read = list(body)
        except BaseException:
            _Rest(iter(()), body).close()  # the server never sees this body: close it here
            raise
        try:
            whole: bytes | None = b"".join(read)
        except TypeError:  # not bytes: the server's business, not cached
            whole = None
        if whole is not None and len(whole) > self.cache.max_body:
            whole = None
        self.done(self._status, self._headers, whole)
        return body if isinstance(body, (list, tuple)) else _Rest(iter(read), body)


class Finishing(Rejection):
    """A write's pass (the shared store only): nothing is captured. Under ASGI its last
    body chunk goes out only after :meth:`~.cache.ResponseCache.finish_write` -- the
    write's finishing invalidation, awaited on the store's asyncio client, never a
    blocking call on the event loop -- was tried (read-after-write: no read after the
    response is served what the write changed). ``tried`` then tells the controller's
    finish that it is done; so does Django's middleware, which tries it once the view
    returned (:meth:`finish`, :meth:`finish_async`); otherwise (plain WSGI: its thread;
    no last chunk or no view's response: an error, a client gone) the finish
    invalidates as for any write."""

    __slots__ = ("cache", "ctx", "tried")
    proceed = True

    def __init__(self, cache: Learner, ctx: RequestContext) -> None:
        super().__init__(0, "write", [])
        self.cache = cache
        self.ctx = ctx
        self.tried = False

    def done(self, status: int, headers: list[tuple[str, str]], body: bytes | None) -> None:
        """Nothing to learn from a write."""

    def finish(self) -> None:
        """The write's finishing invalidation, tried now, blocking (a thread's: Django
        under WSGI). A failed one is kept and replayed by the store (fail open)."""
        if not self.tried:
            self.cache.finish_write_now(self.ctx)
            self.tried = True

    async def finish_async(self) -> None:
        """The write's finishing invalidation, tried now, awaited (the event loop free)."""
        if not self.tried:
            await self.cache.finish_write(self.ctx)
            self.tried = True  # (after: a cancelled await leaves it to the finish)

    def wsgi_start(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        return start_response

    def wsgi_body(self, body: Iterable[bytes], complete: bool = False) -> Iterable[bytes]:
        return body

    def asgi_send(self, send: Send) -> Send:
        async def finishing_send(message: Message) -> None:
            if (not self.tried and message.get("type") == "http.response.body"
                    and not message.get("more_body", False)):
                await self.finish_async()
            await send(message)

        return finishing_send


class _Passed:
    """The app's body passed on chunk by chunk, the first ``max_body`` bytes kept to be
    learnt at its end; closing it closes the app's body (and so the request)."""

    __slots__ = ("_body", "_capture")

    def __init__(self, capture: Capture, body: Iterable[bytes]) -> None:
        self._capture = capture
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        capture = self._capture
        limit = capture.cache.max_body
        kept: list[bytes] = []
        size = 0
        for chunk in self._body:
            if size >= 0:
                size += len(chunk)
                if size > limit:
                    size = -1
                    kept = []
                    capture.done(capture._status, capture._headers, None)
                else:
                    kept.append(chunk)
            yield chunk
        if size >= 0:
            capture.done(capture._status, capture._headers, b"".join(kept))

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


class _Rest:
    """A complete body as read at once, closing the app's body (and so the request) on
    close."""

    __slots__ = ("_body", "_chunks")

    def __init__(self, chunks: Iterator[bytes], body: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
