"""What one loaded module spells, read without running its code, and whether it is
library code: the raw material of :mod:`pulsegate.caches.vocabulary` (which says what
becomes a word: every letter run of the application's strings, adjacent pairs of a
library's).

Read: the string constants of at most :data:`MAX_CONSTANT` characters in the code of
every function and method (nested code, properties' accessors, the originals behind
``functools.wraps``), module- and class-level strings, also inside dicts, lists and
tuples up to three levels deep (at most 64 items each: settings are small, data tables
are not words), and the names of the module, its functions and its classes (also
lower-cased).

>>> import json
>>> found = ModuleStrings.of(json, "json")
>>> "json" in found.names, "dumps" in found.names, is_library(json)
(True, True, True)
"""

from __future__ import annotations

import os
import re
import site
import sysconfig
import types
from typing import Any

__all__ = ["MAX_CONSTANT", "ModuleStrings", "is_library"]

#: Longest string constant read for words (longer ones are prose).
MAX_CONSTANT = 100
#: Items read of one module-level container (settings are small; data tables are not words).
_MAX_ITEMS = 64
_SITE_DIR = re.compile(r"[/\\](?:site|dist)-packages[/\\]")


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else ())
    roots.add(site.getusersitepackages())
    return tuple(sorted({os.path.join(os.path.realpath(r), "") for r in roots if r}))


_LIBRARY_ROOTS = _library_roots()
_REAL_FOLDERS: dict[str, str] = {}


def is_library(module: types.ModuleType) -> bool:
    """Whether ``module`` is library code, by where its file is: under the standard
    library or an installed-packages directory (``site-packages``, ``dist-packages``),
    or no file at all (built in, frozen, made at run time: in doubt, a library). The
    rest -- the application's own tree, an editable install's sources -- is the
    application. (So pulsegate is a library once installed, and counts as the
    application in a checkout: its demo's ``price:{id}`` keeps ``price`` there.)"""
    path = module.__dict__.get("__file__")
    if type(path) is not str or not path:
        return True
    folder = os.path.dirname(path)
    real = _REAL_FOLDERS.get(folder)
    if real is None:  # one resolution per folder (bounded by the loaded modules' folders)
        real = _REAL_FOLDERS[folder] = os.path.join(os.path.realpath(folder), "")
    return _SITE_DIR.search(real) is not None or real.startswith(_LIBRARY_ROOTS)


class ModuleStrings:
    """The strings one module spells: ``constants`` (string constants and settings
    values) and ``names`` (the module's, its functions' and classes')."""

    __slots__ = ("constants", "names")

    def __init__(self, name: str) -> None:
        self.constants: set[str] = set()
        self.names: set[str] = {name}

    @classmethod
    def of(cls, module: types.ModuleType, name: str) -> ModuleStrings:
        """What ``module`` (imported as ``name``) spells; never runs its code."""
        found = cls(name)
        try:
            _read_namespace(list(module.__dict__.values()), name, found)
        except Exception:  # an odd metaclass or descriptor: its words are lost
            pass
        return found


# Every test is on ``type(value)``, never ``isinstance(value, ...)``: a module may hold a
# lazy proxy (Django's ``LazyObject``) whose ``__class__`` would set it up -- reading the
# vocabulary must never run the application's code.

def _read_namespace(values: list[Any], module: str, words: ModuleStrings) -> None:
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


def _read_member(member: Any, words: ModuleStrings) -> None:
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


def _read_function(function: types.FunctionType, words: ModuleStrings) -> None:
    _add_name(function.__name__, words)
    _read_code(function.__code__, words)
    wrapped = function.__dict__.get("__wrapped__")
    if type(wrapped) is types.FunctionType and wrapped is not function:
        _read_function(wrapped, words)


def _read_code(code: types.CodeType, words: ModuleStrings) -> None:
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


def _read_data(data: dict[Any, Any] | list[Any] | tuple[Any, ...], words: ModuleStrings,
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


def _add_constant(text: str, found: ModuleStrings) -> None:
    if len(text) <= MAX_CONSTANT:
        found.constants.add(text)


def _add_name(name: str, found: ModuleStrings) -> None:
    found.names.add(name)
    found.names.add(name.lower())
