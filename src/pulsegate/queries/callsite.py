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
from collections.abc import Callable
from types import CodeType, FrameType

__all__ = ["CallSiteFinder", "TemplateFrame", "call_site", "default_finder"]


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


#: ``frame -> site or None`` for the frames of a template engine whose code is library code
#: but whose position is the application's (a Django template node rendering itself):
#: registered by the adapter, keyed by the id of the code object they describe.
TemplateFrame = Callable[[FrameType], "str | None"]


class CallSiteFinder:
    """Finds the first application frame. ``extra_library_roots`` adds directories whose
    frames are skipped too (an in-house framework, say).

    Caches are keyed by ``id(code)``, not by the code object: hashing a code object
    hashes its bytecode and constants on every call (~0.5 µs), an int hashes for free.
    ``_keep`` holds every code object seen, so no id is reused while it is a key; the
    caches are cleared together when they grow past ``max_entries``.

    **Paths.** Walking from an ORM hook to the application costs one step per frame,
    and a lazy load read in a template is 40-70 frames down (15-23 µs a statement on
    real pages). So the walk is done once per *path*: keyed by the code location the
    search starts at, the finder remembers how many frames up the application frame was
    and which library code sat just below it. The next statement from that location
    jumps there with ``sys._getframe`` (C, no frame objects built on the way) and
    checks that the frame below is that code and the frame itself application code;
    if not, it walks. A path differing from a learnt one only in the middle, with both
    ends and the length equal, would be named by the learnt one's application frame."""

    __slots__ = ("_cwd", "_keep", "_lines", "_paths", "_verdict", "max_depth",
                 "max_entries", "roots", "templates")

    def __init__(self, extra_library_roots: tuple[str, ...] = (), max_depth: int = 250,
                 max_entries: int = 50_000) -> None:
        self.roots = _library_roots() + tuple(os.path.abspath(p) + os.sep for p in extra_library_roots)
        self.max_depth = max_depth
        self.max_entries = max_entries
        self._verdict: dict[int, bool] = {}
        self._keep: list[CodeType] = []
        self._lines: dict[tuple[int, int], str] = {}
        #: (id(code), offset) where a search starts -> [(frames up, id(code) below)].
        self._paths: dict[tuple[int, int], list[tuple[int, int]]] = {}
        #: id(code) -> how to name a template engine's frame of that code.
        self.templates: dict[int, TemplateFrame] = {}
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
                self._paths.clear()
                self._keep.clear()
            self._keep.append(code)
            self._verdict[id(code)] = verdict
        return verdict

    def register_template_frame(self, code: CodeType, describe: TemplateFrame) -> None:
        """Name frames of ``code`` (a template engine's node renderer) by ``describe``."""
        self._keep.append(code)
        self.templates[id(code)] = describe

    def find(self, depth: int = 2) -> str | None:
        """``path:line in function`` of the first application frame above the caller
        (``depth`` frames up), or None when the whole stack is library code."""
        try:
            start: FrameType = sys._getframe(depth)
        except ValueError:
            return None
        key = (id(start.f_code), start.f_lasti)
        paths = self._paths.get(key)
        if paths is None:
            site = self._lines.get(key)  # rendered: the start frame is the application's
            if site is not None:
                return site
        else:
            lines = self._lines
            for up, below in paths:
                try:
                    under = sys._getframe(depth + up - 1)
                except ValueError:
                    continue
                frame = under.f_back
                if frame is None or id(under.f_code) != below:
                    continue
                # Only application frames' sites are rendered into ``_lines``: a hit is
                # the answer in one look-up, without ``_site``'s verdict checks
                # (benchmarks/real_pages.py --bytecodes: 111 -> 45 a statement).
                site = lines.get((id(frame.f_code), frame.f_lasti))
                if site is None:
                    site = self._site(frame)
                if site is not None:
                    return site
        return self._walk(start, key)

    def _walk(self, frame: FrameType | None, key: tuple[int, int]) -> str | None:
        verdict, templates = self._verdict, self.templates
        n, up, below, crossed = self.max_depth, 0, 0, False
        while frame is not None and n:
            code = frame.f_code
            cid = id(code)
            lib = verdict.get(cid)
            if lib is None:
                lib = self.is_library(code)
            if not lib or cid in templates:
                site = self._site(frame)
                if site is not None:
                    if up and not crossed:
                        self._learn(key, up, below)
                    return site
            below = cid
            frame = frame.f_back
            up += 1
            n -= 1
            if frame is None and n:
                frame = _greenlet_parent_frame()
                crossed = True
        return None

    def _site(self, frame: FrameType) -> str | None:
        """The site ``frame`` names, or None when it is a library frame."""
        code = frame.f_code
        cid = id(code)
        describe = self.templates.get(cid)
        if describe is not None:
            try:
                return describe(frame)
            except Exception:
                return None
        lib = self._verdict.get(cid)
        if lib is None:
            lib = self.is_library(code)
        if lib:
            return None
        # Keyed by the instruction offset, not f_lineno: computing the line decodes the
        # line table on every call, the offset is a field read.
        lkey = (cid, frame.f_lasti)
        site = self._lines.get(lkey)
        if site is None:
            site = self._render(lkey, frame)
        return site

    def _learn(self, key: tuple[int, int], up: int, below: int) -> None:
        paths = self._paths.get(key)
        if paths is None:
            if len(self._paths) >= self.max_entries:
                self._paths.clear()
            paths = self._paths[key] = []
        if (up, below) not in paths:
            paths.insert(0, (up, below))
            del paths[8:]  # a location reached by many paths: the newest eight

    def relative(self, path: str) -> str:
        if self._cwd and path.startswith(self._cwd):
            return path[len(self._cwd):]
        return path

    def _render(self, key: tuple[int, int], frame: FrameType) -> str:
        code = frame.f_code
        path, line, name = code.co_filename, frame.f_lineno, code.co_name
        # A compiled Jinja template: its module's line is not the template's.
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            try:
                line = template.get_corresponding_lineno(line)
                path = template.filename or path
                name = "template"
            except Exception:
                pass
        site = f"{self.relative(path)}:{line} in {name}"
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


def call_site(depth: int = 2) -> str | None:
    """The first application frame above the caller of this function's caller."""
    return default_finder.find(depth + 1)
