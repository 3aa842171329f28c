"""Request paths as they leave the process: folded, unless raw paths are asked for.

A request path may carry a secret -- a password-reset or sign-in token, a signed
download link, an e-mail address (``/reset/Zk9qTm4xR2Vh``, ``/unsubscribe/jo@example.com``).
The route template already names the endpoint; the path beside it in an anomaly's log
record, the dashboard and the state file only tells one URL from another (most of all
the unmatched ones). So by default it is exported as its *pattern*, folded the way cache
keys are (:mod:`pulsegate.caches.keys`, fail-closed): ids become ``{id}``, digit runs
``{n}``, and a segment that is not a literal word of one of the application's route
templates (:class:`RouteWords`: as the gate learnt them, ``GET /users/{id}/reset`` ->
``users``, ``reset``; plus ``cache_key_words``) becomes ``{*}`` -- what is not understood
is not exported. ``raw_paths=True`` exports paths as they came (what OpenTelemetry and
Sentry do), for applications whose paths hold nothing private.

>>> folded = PathExport(words={"reset", "users", "static"})
>>> folded("/users/42/reset/Zk9qTm4xR2Vh")
'/users/{id}/reset/{id}'
>>> folded("/users/jo.smith/reset/ZkqTmxRVhQpL")
'/users/{*}.{*}/reset/{*}'
>>> folded("/static/app.css")
'/static/{*}.{*}'
>>> PathExport(raw=True)("/users/42/reset/Zk9qTm4xR2Vh")
'/users/42/reset/Zk9qTm4xR2Vh'
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Container, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from pulsegate.caches.keys import KeyPatterns
from pulsegate.caches.vocabulary import words_of
from pulsegate.learn.baseline import KNOWN_METHODS

if TYPE_CHECKING:
    from pulsegate.plugins import Host

__all__ = ["REREAD_SECONDS", "PathExport", "RouteWords", "exported_path"]

class Routes(Protocol):
    """What :class:`RouteWords` reads: the endpoint names, and how many there are
    (a :class:`~pulsegate.learn.baseline.BaselineStore`; a list)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[str]: ...


class RouteWords:
    """The literal words of the route templates in ``routes`` (endpoint names such as
    ``GET /users/{id}/reset``: ``GET``, ``users``, ``reset`` -- a ``{parameter}``'s name
    is not a word of a path; a unit's model -- a job, an upstream -- names no route), and
    ``extra``'s. :meth:`refresh` reads them again; never on the request path (paths are
    folded as they leave).

    >>> words = RouteWords(["GET /users/{id}/reset", "POST /static/<path:name>"])
    >>> "reset" in words, "static" in words, "id" in words, "name" in words
    (True, True, False, False)
    """

    __slots__ = ("changes", "clock", "extra", "read_at", "routes", "seen", "words")

    def __init__(self, routes: Routes, extra: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.routes = routes
        self.extra = words_of(extra)
        self.clock = clock
        self.seen = -1
        self.read_at = float("-inf")
        #: how many times the words changed (a fold made before may read differently)
        self.changes = 0
        self.words: frozenset[str] = frozenset()
        self.refresh()

    def refresh(self) -> None:
        """Read the words again if a route was added or dropped since, at most once in
        :data:`REREAD_SECONDS` (a store at its cap churning through units -- upstream
        hosts a user chose -- changes at every call while its routes stay the same)."""
        now = self.clock()
        if _made(self.routes) == self.seen or now - self.read_at < REREAD_SECONDS:
            return
        self.seen, self.read_at = _made(self.routes), now
        words = words_of(_PARAMETER.sub("", route) for route in list(self.routes)
                         if _is_endpoint(route))
        if words != self.words:
            self.words = words
            self.changes += 1

    def __contains__(self, word: object) -> bool:
        return word in self.words or word in self.extra


def _made(routes: Routes) -> int:
    """How many routes were ever added to ``routes``: how many it holds, plus those a
    bounded store dropped (a :class:`~pulsegate.learn.baseline.BaselineStore` at its
    ``max_endpoints`` makes room for a new route by evicting one, and its length stays
    put while its routes change)."""
    return len(routes) + getattr(routes, "evictions", 0)


def _is_endpoint(key: str) -> bool:
    """Whether ``key`` names an endpoint (``GET /users/{id}``), not a unit whose model
    shares the store (``JOB send_email``, ``UPSTREAM https://host``): a job's name or a
    host the application was given is no route template."""
    method = key.partition(" ")[0]
    return method in KNOWN_METHODS or method == "OTHER"


#: seconds between two reads of the route templates' words (one read: ≈ 3 ms at 1 000 routes)
REREAD_SECONDS = 1.0

#: a route parameter, as frameworks spell them: ``{id}``, ``{id:int}``, ``<int:id>``
_PARAMETER = re.compile(r"\{[^}]*\}|<[^>]*>")


class PathExport:
    """``export(path)``: the path as exported -- its pattern over ``words``, or the path
    itself when ``raw``. Bounded memory and linear time (the patterns' memo, cardinality
    guard and length cap)."""

    __slots__ = ("patterns", "raw", "route_words", "seen")

    def __init__(self, raw: bool = False, words: Container[str] = frozenset()) -> None:
        self.raw = raw
        self.patterns: KeyPatterns | None = None if raw else KeyPatterns(words=words)
        self.route_words = words if isinstance(words, RouteWords) else None
        self.seen = -1

    def __call__(self, path: str) -> str:
        if self.patterns is None:
            return path
        if self.route_words is not None:
            self.route_words.refresh()
            if self.route_words.changes != self.seen:
                # a route was learnt since: a path folded before may keep more words now
                self.seen = self.route_words.changes
                self.patterns.forget()
        return self.patterns.pattern(path)


_BY_GATE: weakref.WeakKeyDictionary[Any, PathExport] = weakref.WeakKeyDictionary()


def exported_path(gate: Host, path: str) -> str:
    """``path`` as ``gate`` exports it (``config.export.raw_paths``), over the words of
    its route templates and ``config.io.cache_key_words``: one :class:`PathExport` per
    gate."""
    export = _BY_GATE.get(gate)
    if export is None:
        c = gate.config
        export = _BY_GATE[gate] = PathExport(
            c.export.raw_paths, RouteWords(gate.baselines, c.io.cache_key_words, gate.clock))
    return export(path)
