"""Request paths as they leave the process: folded, unless raw paths are asked for.

A request path may carry a secret -- a password-reset or sign-in token, a signed
download link, an e-mail address (``/reset/Zk9qTm4xR2Vh``, ``/unsubscribe/jo@example.com``).
The route template already names the endpoint; the path beside it in an anomaly's log
record, the dashboard, the CLI, an alert and the state file only tells one URL of a
route from another. So by default it is exported as its *pattern*, folded the way cache
keys are (:mod:`pulsegate.caches.keys`, fail-closed): ids become ``{id}``, digit runs
``{n}``, and a segment the application's own code does not spell becomes ``{*}`` -- what
is not understood is not exported. ``raw_paths=True`` exports paths as they came (what
OpenTelemetry and Sentry do), for applications whose paths hold nothing private.

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

import weakref
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulsegate.caches.keys import KeyPatterns
    from pulsegate.plugins import Host

__all__ = ["PathExport", "exported_path"]


class PathExport:
    """``export(path)``: the path as exported -- its pattern, or the path itself when
    ``raw``. ``words``: the words kept (default: the loaded program's vocabulary plus
    ``extra``). Bounded memory (the patterns' memo and cardinality guard); the folder
    is made on the first path, which is an anomaly's (rare, and never the request's
    own response)."""

    __slots__ = ("_patterns", "extra", "raw", "words")

    def __init__(self, raw: bool = False, words: Container[str] | None = None,
                 extra: Iterable[str] = ()) -> None:
        self.raw = raw
        self.words = words
        self.extra = tuple(extra)
        self._patterns: KeyPatterns | None = None

    def __call__(self, path: str) -> str:
        if self.raw:
            return path
        patterns = self._patterns
        if patterns is None:
            from pulsegate.caches.keys import KeyPatterns
            from pulsegate.caches.vocabulary import Vocabulary
            words = self.words if self.words is not None else Vocabulary(self.extra)
            patterns = self._patterns = KeyPatterns(words=words)
        return patterns.pattern(path)


_BY_GATE: weakref.WeakKeyDictionary[Any, PathExport] = weakref.WeakKeyDictionary()


def exported_path(gate: Host, path: str) -> str:
    """``path`` as ``gate`` exports it (``config.export.raw_paths``; the words of
    ``config.io.cache_key_words`` are kept too): one :class:`PathExport` per gate."""
    export = _BY_GATE.get(gate)
    if export is None:
        c = gate.config
        export = _BY_GATE[gate] = PathExport(c.export.raw_paths, extra=c.io.cache_key_words)
    return export(path)
