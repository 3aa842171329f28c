r"""The words the running program spells: which parts of a cache key are structure.

A cache key is built by code -- ``f"session:{user}"``, ``"user:%s:profile" % pk``,
Django's ``views.decorators.cache.cache_page.<prefix>.GET...`` -- and its constant
parts are string constants of some loaded function, a module-level constant or a
setting (``KEY_PREFIX``). Its data parts (a user name, a slug, a search term) come
from requests and the database. So :mod:`pulsegate.caches.keys` keeps a word of a key
only when the program itself spells it; every other word becomes ``{*}``. That is
fail-closed: a user called ``alice`` is reported as ``session:{*}`` from her first
key on, not after 64 others.

The words are read differently from the application and from its libraries. A module
is a *library* when its file lies under the standard library or an installed-packages
directory (``site-packages``, ``dist-packages``), when it has no file (built in, frozen,
made at run time: in doubt, the narrower rule); the rest is the *application*
(:func:`~pulsegate.caches.module_strings.is_library`).

From the application, the words are the letter runs of

* the string constants without whitespace of at most 100 characters (key templates;
  prose such as docstrings and messages is left out) in the code of
  every function and method, nested code included, and the originals behind
  ``functools.wraps`` decorators;
* module-level strings of that kind, also inside dicts, lists and tuples up to three
  levels deep (settings such as ``CACHES = {"default": {"KEY_PREFIX": "shop"}}``);
* module names, and the names of functions and classes (also lower-cased: keys are
  often ``f"{Model.__name__.lower()}:{pk}"``);
* words given explicitly (``cache_key_words``).

From a library only *pairs*: two words adjacent in one such constant (or module name)
with the delimiters between them as written (:func:`key_pairs`: Celery's
``"celery-task-meta-"`` gives ``celery-task`` and ``task-meta``). A library's word is
kept in a key only beside the neighbour it has there: ``celery-task-meta-{id}`` and
``rq:job:{id}`` stay readable, while ``admin`` -- a word Django spells alone and as
``admin:index`` -- is folded in ``session:admin`` unless the application spells it.
A library's lone words (``"admin"``, ``f"lock:{name}"``) and its function and class
names give nothing. The HTTP methods (:data:`METHODS`) are words too.

A module is read once, on a background thread: all of them when the vocabulary is
made (the cache monitor is made at start-up), then those imported since, when a word
is missing and the set of loaded modules has grown (the code that builds a key is
loaded before the key exists). Reading 1 550 modules (Django, Celery, SQLAlchemy,
FastAPI, Flask, httpx, requests, redis-py, RQ, pulsegate) takes 0.3-0.7 s on a loaded
2-core machine (figures in docs/dev-notes/issue-21-io.md) and gives about 17 000 words
and pairs; until it is done a word is not known (``{*}``, fail-closed) and the
folder does not keep such verdicts.

>>> words = Vocabulary(("tenant",))
>>> words.ready()
True
>>> "tenant" in words, "GET" in words, "zqxv" in words
(True, True, False)
"""

from __future__ import annotations

import re
import sys
import threading
import types
from collections.abc import Iterable

from pulsegate.caches.module_strings import ModuleStrings, is_library

__all__ = ["METHODS", "ProgramWords", "Vocabulary", "key_pairs", "program_words", "words_of"]

_WORDS = re.compile(r"[^\W\d_]+")


def words_of(texts: Iterable[str]) -> frozenset[str]:
    """The words (runs of letters) of ``texts``: what a key or a path may keep of them.

    >>> sorted(words_of(["price:{id}", "GET /users/<int:pk>"]))
    ['GET', 'id', 'int', 'pk', 'price', 'users']
    """
    return frozenset(w for text in texts for w in _WORDS.findall(text))
#: the key delimiters of :mod:`pulsegate.caches.keys` (less the space: prose is not read)
_KEY_PARTS = re.compile(r"([:/.\-_|,=@]+)")
#: HTTP request methods, upper case: a closed vocabulary, never a person's name, in the
#: keys Django's cache middleware builds (``views.decorators.cache.cache_page..GET.<hash>``)
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_SPACE = re.compile(r"\s")


class Vocabulary:
    """The words kept in key patterns: ``extra`` (``cache_key_words``) and those of the
    loaded program (:class:`ProgramWords`, one per process, shared)."""

    __slots__ = ("extra", "program")

    def __init__(self, extra: Iterable[str] = (), program: ProgramWords | None = None) -> None:
        self.extra = words_of(extra)
        self.program = program if program is not None else program_words()

    def __contains__(self, word: object) -> bool:
        return word in self.extra or word in self.program

    @property
    def settled(self) -> bool:
        """See :attr:`ProgramWords.settled`."""
        return self.program.settled

    def ready(self, timeout: float = 30.0) -> bool:
        """See :meth:`ProgramWords.ready`."""
        return self.program.ready(timeout)


_PROGRAM: ProgramWords | None = None
_PROGRAM_LOCK = threading.Lock()


def program_words() -> ProgramWords:
    """The process's :class:`ProgramWords`, made (and its first read started) on first use."""
    global _PROGRAM
    with _PROGRAM_LOCK:
        if _PROGRAM is None:
            _PROGRAM = ProgramWords()
        return _PROGRAM


class ProgramWords:
    """The set of words of the loaded program (see the module doc). ``word in
    words`` never waits: a word not (yet) known is not in it, and when modules were
    imported since the last read a background thread reads them (one at a time).
    :attr:`settled` says whether every loaded module has been read (a caller may keep
    a verdict only then); :meth:`ready` waits for that. Thread-safe."""

    __slots__ = ("_lock", "_main", "_read", "_read_lock", "_seen", "_thread", "application",
                 "libraries", "words")

    def __init__(self, *, start: bool = True, application: bool = True,
                 libraries: bool = True) -> None:
        #: the words (application) and adjacent pairs (libraries) read so far
        self.words: frozenset[str] | set[str] = METHODS
        #: whether the application's modules are read, and the libraries' (both but in
        #: tests and benchmarks, which look at one side)
        self.application = application
        self.libraries = libraries
        #: names of the modules read
        self._read: set[str] = set()
        #: ``len(sys.modules)`` when last read: a cheap "nothing new" test
        self._seen = -1
        #: the size of ``__main__``'s namespace when last read (a script defines its
        #: functions after it has made the cache monitor: read again when it grew)
        self._main = -1
        self._lock = threading.Lock()  # starting the reading thread
        self._read_lock = threading.Lock()  # reading
        self._thread: threading.Thread | None = None
        if start:
            self._read_in_background()

    def __contains__(self, word: object) -> bool:
        if word in self.words:
            return True
        if self._read_main() and word in self.words:
            return True
        if self._due():
            self._read_in_background()
        return False

    @property
    def settled(self) -> bool:
        """Every module loaded now has been read (no read running, none due). When a
        read is due it is started (in the background), so a caller that asks again
        later finds it settled."""
        self._read_main()
        if self._due():
            self._read_in_background()
            return False
        thread = self._thread  # after a fork the reading thread is gone: not alive
        return thread is None or not thread.is_alive()

    def ready(self, timeout: float = 30.0) -> bool:
        """Read what is due and wait for it (tests, start-up code); returns
        :attr:`settled`."""
        if self._due():
            self._read_in_background()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._due():
            self.read_new_modules()
        return self.settled

    def _read_main(self) -> bool:
        """Read ``__main__`` here if it grew (a script defines its functions after it
        made the cache monitor: one module), unless a read is running."""
        return _main_size() != self._main and self.read_new_modules(wait=False, main_only=True) > 0

    def _due(self) -> bool:
        return len(sys.modules) != self._seen or _main_size() != self._main

    def _read_in_background(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            self._thread = threading.Thread(target=self.read_new_modules, daemon=True,
                                            name="pulsegate-cache-vocabulary")
            self._thread.start()

    def read_new_modules(self, wait: bool = True, main_only: bool = False) -> int:
        """Read the modules imported since the last call (on the calling thread), or
        only ``__main__`` if it grew; returns how many were read (none when ``wait`` is
        false and a read is running)."""
        if not self._read_lock.acquire(blocking=wait):
            return 0
        try:
            main = _main_size()
            if main != self._main:
                self._read.discard("__main__")
            modules = list(sys.modules.items()) if not main_only else \
                [("__main__", sys.modules["__main__"])] if "__main__" in sys.modules else []
            seen = self._seen if main_only else len(modules)
            fresh = [(name, module) for name, module in modules if name not in self._read]
            texts: set[str] = set()  # the application's strings, each split once at the end
            shaped: set[str] = set()  # the libraries' key-shaped strings and module names
            for name, module in fresh:
                is_module = issubclass(type(module), types.ModuleType)  # never a lazy proxy
                if is_module and getattr(module.__dict__.get("__spec__"), "_initializing",
                                         False) is True:
                    seen = -1  # still being imported (by another thread): read it later
                    continue
                self._read.add(name)
                library = not is_module or is_library(module)
                if library and not self.libraries:
                    continue
                if not library and not self.application:
                    continue
                found = ModuleStrings.of(module, name) if is_module else ModuleStrings(name)
                if library:
                    shaped.update(found.constants)
                    shaped.add(name)  # dotted: its adjacent pairs (class names are not read)
                else:
                    texts.update(found.constants, found.names)
            words: set[str] = set()
            for text in texts:
                if not _SPACE.search(text):
                    words.update(_WORDS.findall(text))
            for text in shaped:
                if not _SPACE.search(text):
                    words.update(key_pairs(text))
            self.words = self.words | words  # one reference swap: readers never lock
            self._seen = seen
            self._main = main
            return len(fresh)
        finally:
            self._read_lock.release()


def _main_size() -> int:
    main = sys.modules.get("__main__")
    return len(main.__dict__) if issubclass(type(main), types.ModuleType) else 0


def key_pairs(text: str) -> list[str]:
    """The pairs of adjacent words of ``text`` with the delimiters between them, as
    written: ``"celery-task-meta-"`` gives ``celery-task`` and ``task-meta``;
    ``"admin"``, ``"user:%s"`` and ``"lock:{}"`` give none (a lone word).

    >>> key_pairs("views.decorators.cache.cache_page.%s")
    ['views.decorators', 'decorators.cache', 'cache.cache', 'cache_page']
    """
    parts = _KEY_PARTS.split(text)
    return [parts[i] + parts[i + 1] + parts[i + 2] for i in range(0, len(parts) - 2, 2)
            if _WORDS.fullmatch(parts[i]) and _WORDS.fullmatch(parts[i + 2])]


