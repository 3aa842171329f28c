r"""The words the running program spells: which parts of a cache key are structure.

A cache key is built by code -- ``f"session:{user}"``, ``"user:%s:profile" % pk``,
Django's ``views.decorators.cache.cache_page.<prefix>.GET...`` -- and its constant
parts are string constants of some loaded function, a module-level constant or a
setting (``KEY_PREFIX``). Its data parts (a user name, a slug, a search term) come
from requests and the database. So :mod:`pulsegate.caches.keys` keeps a word of a key
only when the program itself spells it; every other word becomes ``{*}``. That is
fail-closed: a user called ``alice`` is reported as ``session:{*}`` from her first
key on, not after 64 others.

The words are the letter runs of

* the string constants without whitespace of at most :data:`MAX_CONSTANT` characters
  (key templates; prose such as docstrings and messages is left out) in the code of
  every function and method of every loaded module, nested code included, and the
  originals behind ``functools.wraps`` decorators;
* module-level strings of that kind, also inside dicts, lists and tuples up to three
  levels deep (settings such as ``CACHES = {"default": {"KEY_PREFIX": "shop"}}``);
* module names, and the names of functions and classes (also lower-cased: keys are
  often ``f"{Model.__name__.lower()}:{pk}"``);
* words given explicitly (``cache_key_words``).

A module is read once, on a background thread: all of them when the vocabulary is
made (the cache monitor is made at start-up), then those imported since, when a word
is missing and the set of loaded modules has grown (the code that builds a key is
loaded before the key exists). Reading 1 350 modules (Django, Celery, SQLAlchemy,
FastAPI, Flask, httpx, requests, redis-py, RQ, pulsegate) takes about 1 s on a loaded
2-core machine (``/work`` figures in docs/dev-notes/issue-21-io.md) and gives about
20 000 words; until it is done a word is not known (``{*}``, fail-closed) and the
folder does not keep such verdicts.

>>> words = Vocabulary(("tenant",))
>>> words.ready()
True
>>> "tenant" in words, "cache_page" in words, "zqxv" in words
(True, True, False)
"""

from __future__ import annotations

import re
import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_CONSTANT", "ProgramWords", "Vocabulary", "program_words"]

#: Longest string constant read for words (longer ones are prose).
MAX_CONSTANT = 100
#: Items read of one module-level container (settings are small; data tables are not words).
_MAX_ITEMS = 64
_WORDS = re.compile(r"[^\W\d_]+")
_SPACE = re.compile(r"\s")


class Vocabulary:
    """The words kept in key patterns: ``extra`` (``cache_key_words``) and those of the
    loaded program (:class:`ProgramWords`, one per process, shared)."""

    __slots__ = ("extra", "program")

    def __init__(self, extra: Iterable[str] = (), program: ProgramWords | None = None) -> None:
        self.extra = frozenset(w for text in extra for w in _WORDS.findall(text))
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

    __slots__ = ("_lock", "_read", "_read_lock", "_seen", "_thread", "words")

    def __init__(self, *, start: bool = True) -> None:
        self.words: frozenset[str] | set[str] = frozenset()
        #: names of the modules read
        self._read: set[str] = set()
        #: ``len(sys.modules)`` when last read: a cheap "nothing new" test
        self._seen = -1
        self._lock = threading.Lock()  # starting the reading thread
        self._read_lock = threading.Lock()  # reading
        self._thread: threading.Thread | None = None
        if start:
            self._read_in_background()

    def __contains__(self, word: object) -> bool:
        if word in self.words:
            return True
        if len(sys.modules) != self._seen:
            self._read_in_background()
        return False

    @property
    def settled(self) -> bool:
        """Every module loaded now has been read (no read running, none due). When a
        read is due it is started (in the background), so a caller that asks again
        later finds it settled."""
        if len(sys.modules) != self._seen:
            self._read_in_background()
            return False
        thread = self._thread  # after a fork the reading thread is gone: not alive
        return thread is None or not thread.is_alive()

    def ready(self, timeout: float = 30.0) -> bool:
        """Read what is due and wait for it (tests, start-up code); returns
        :attr:`settled`."""
        if len(sys.modules) != self._seen:
            self._read_in_background()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if len(sys.modules) != self._seen:
            self.read_new_modules()
        return self.settled

    def _read_in_background(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            self._thread = threading.Thread(target=self.read_new_modules, daemon=True,
                                            name="pulsegate-cache-vocabulary")
            self._thread.start()

    def read_new_modules(self) -> int:
        """Read the modules imported since the last call (on the calling thread);
        returns how many were read."""
        with self._read_lock:
            modules = list(sys.modules.items())
            seen = len(modules)
            fresh = [(name, module) for name, module in modules if name not in self._read]
            texts: set[str] = set()  # the candidate strings, each split once at the end
            for name, module in fresh:
                is_module = issubclass(type(module), types.ModuleType)  # never a lazy proxy
                if is_module and getattr(module.__dict__.get("__spec__"), "_initializing",
                                         False) is True:
                    seen = -1  # still being imported (by another thread): read it later
                    continue
                self._read.add(name)
                texts.add(name)
                if is_module:
                    try:
                        _read_namespace(list(module.__dict__.values()), name, texts)
                    except Exception:  # an odd metaclass or descriptor: its words are lost
                        continue
            words: set[str] = set()
            for text in texts:
                if not _SPACE.search(text):
                    words.update(_WORDS.findall(text))
            self.words = self.words | words  # one reference swap: readers never lock
            self._seen = seen
            return len(fresh)


# Every test is on ``type(value)``, never ``isinstance(value, ...)``: a module may hold a
# lazy proxy (Django's ``LazyObject``) whose ``__class__`` would set it up -- reading the
# vocabulary must never run the application's code.

def _read_namespace(values: list[Any], module: str, words: set[str]) -> None:
    for value in values:
        kind = type(value)
        if kind is str:
            _add_constant(value, words)
        elif kind is types.FunctionType:
            _read_function(value, words)
        elif issubclass(kind, type):
            if value.__dict__.get("__module__") == module:
                _add_name(value.__name__, words)
                for member in list(value.__dict__.values()):
                    _read_member(member, words)
        elif kind is dict or kind is list or kind is tuple:
            _read_data(value, words, 3)


def _read_member(member: Any, words: set[str]) -> None:
    kind = type(member)
    if kind is staticmethod or kind is classmethod:
        member = member.__func__
        kind = type(member)
    elif kind is property:
        for accessor in (member.fget, member.fset):
            if type(accessor) is types.FunctionType:
                _read_function(accessor, words)
        return
    if kind is types.FunctionType:
        _read_function(member, words)
    elif kind is str:
        _add_constant(member, words)
    elif kind is dict or kind is list or kind is tuple:
        _read_data(member, words, 2)


def _read_function(function: types.FunctionType, words: set[str]) -> None:
    _add_name(function.__name__, words)
    _read_code(function.__code__, words)
    wrapped = function.__dict__.get("__wrapped__")
    if type(wrapped) is types.FunctionType and wrapped is not function:
        _read_function(wrapped, words)


def _read_code(code: types.CodeType, words: set[str]) -> None:
    for const in code.co_consts:
        kind = type(const)
        if kind is str:
            _add_constant(const, words)
        elif kind is types.CodeType:
            _read_code(const, words)
        elif kind is tuple or kind is frozenset:
            for item in const:
                if type(item) is str:
                    _add_constant(item, words)


def _read_data(data: dict[Any, Any] | list[Any] | tuple[Any, ...], words: set[str],
               depth: int) -> None:
    items = list(data.items())[:_MAX_ITEMS] if type(data) is dict \
        else [(None, v) for v in data[:_MAX_ITEMS]]
    for key, value in items:
        if type(key) is str:
            _add_constant(key, words)
        kind = type(value)
        if kind is str:
            _add_constant(value, words)
        elif depth > 1 and (kind is dict or kind is list or kind is tuple):
            _read_data(value, words, depth - 1)


def _add_constant(text: str, texts: set[str]) -> None:
    if len(text) <= MAX_CONSTANT:
        texts.add(text)


def _add_name(name: str, texts: set[str]) -> None:
    texts.add(name)
    texts.add(name.lower())
