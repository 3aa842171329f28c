"""The application line that ran a statement: the first stack frame outside pulsegate,
the ORM, the web framework, other installed libraries and the standard library, as
``path:line in function``.

Cheap by construction: ``sys._getframe`` and ``f_back`` (no ``inspect.stack()``, which
reads source files), and the "is this a library frame?" verdict is cached per code
object (by id), so a frame costs one dict look-up. The rendered ``path:line in function`` is
cached per (code, instruction offset), which is a field read where the line number
would decode the line table on every call.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import CodeType, FrameType

__all__ = ["CallSiteFinder", "call_site", "default_finder"]


def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            path = sysconfig.get_paths()[key]
        except KeyError:
            continue
        roots.add(os.path.realpath(path) + os.sep)
        roots.add(os.path.abspath(path) + os.sep)
    # pulsegate itself, wherever it is installed from (an editable checkout included).
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots.add(here + os.sep)
    return tuple(sorted(roots))


#: Files inside pulsegate that are application code: the demo's own app, whose N+1
#: the demo shows with its call site.
_APPLICATION_FILES = frozenset(
    {os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo_app.py")})


class CallSiteFinder:
    """Finds the first application frame. ``extra_library_roots`` adds directories whose
    frames are skipped too (an in-house framework, say).

    Caches are keyed by ``id(code)``, not by the code object: hashing a code object
    hashes its bytecode and constants on every call (~0.5 µs), an int hashes for free.
    ``_keep`` holds every code object seen, so no id is reused while it is a key; the
    three structures are cleared together when they grow past ``max_entries``."""

    __slots__ = ("_cwd", "_keep", "_lines", "_verdict", "max_depth", "max_entries", "roots")

    def __init__(self, extra_library_roots: tuple[str, ...] = (), max_depth: int = 80,
                 max_entries: int = 50_000) -> None:
        self.roots = _library_roots() + tuple(os.path.abspath(p) + os.sep for p in extra_library_roots)
        self.max_depth = max_depth
        self.max_entries = max_entries
        self._verdict: dict[int, bool] = {}
        self._keep: list[CodeType] = []
        self._lines: dict[tuple[int, int], str] = {}
        try:
            self._cwd = os.getcwd() + os.sep
        except OSError:
            self._cwd = ""

    def is_library(self, code: CodeType) -> bool:
        verdict = self._verdict.get(id(code))
        if verdict is None:
            name = code.co_filename
            path = os.path.abspath(name) if name else ""
            verdict = (not name or name.startswith("<") or (
                ("site-packages" in name or "dist-packages" in name
                 or path.startswith(self.roots)) and path not in _APPLICATION_FILES))
            if len(self._keep) >= self.max_entries:  # generated code churn: stay bounded
                self._verdict.clear()
                self._lines.clear()
                self._keep.clear()
            self._keep.append(code)
            self._verdict[id(code)] = verdict
        return verdict

    def find(self, depth: int = 2) -> str | None:
        """``path:line in function`` of the first application frame above the caller
        (``depth`` frames up), or None when the whole stack is library code."""
        try:
            frame: FrameType | None = sys._getframe(depth)
        except ValueError:
            return None
        verdict = self._verdict
        n = self.max_depth
        while frame is not None and n:
            code = frame.f_code
            lib = verdict.get(id(code))
            if lib is None:
                lib = self.is_library(code)
            if not lib:
                # Keyed by the instruction offset, not f_lineno: computing the line
                # decodes the line table on every call, the offset is a field read.
                key = (id(code), frame.f_lasti)
                site = self._lines.get(key)
                if site is None:
                    site = self._render(key, code, frame.f_lineno)
                return site
            frame = frame.f_back
            n -= 1
            if frame is None and n:
                frame = _greenlet_parent_frame()
        return None

    def _render(self, key: tuple[int, int], code: CodeType, line: int) -> str:
        path = code.co_filename
        if self._cwd and path.startswith(self._cwd):
            path = path[len(self._cwd):]
        site = f"{path}:{line} in {code.co_name}"
        self._lines[key] = site
        return site


def _greenlet_parent_frame() -> FrameType | None:
    """SQLAlchemy's asyncio layer runs the ORM in a greenlet whose stack ends at its own
    entry point; the application's coroutine is on the parent greenlet's stack."""
    mod = sys.modules.get("greenlet")
    if mod is None:
        return None
    try:
        parent = mod.getcurrent().parent
        return parent.gr_frame if parent is not None else None
    except Exception:
        return None


default_finder = CallSiteFinder()

#: Whether the ORM hooks record call sites (config ``capture_call_sites``; process-wide,
#: because the hooks are).
enabled = True


def call_site(depth: int = 2) -> str | None:
    """The first application frame above the caller of this function's caller."""
    return default_finder.find(depth + 1)
