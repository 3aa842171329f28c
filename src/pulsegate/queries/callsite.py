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
from contextlib import suppress
from sys import _getframe
from types import CodeType, FrameType
from typing import TypeVar

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
    and a lazy load read in a template is 40-70 frames down. So a walk is done once per
    *path*, and what it learns is keyed by where it ended: the application frame's call
    instruction ``(id(code), offset)`` and how many frames above :meth:`find` it sat
    (its ``reach``). The next search from the same hook (same ``depth``) jumps to the
    hook's most recent reach with one ``sys._getframe(reach)`` (C: the frames on the
    way get no frame object) and takes the site if that frame's call instruction was
    learnt at that reach -- one dict look-up, whatever the statement's text; then the
    hook's other reaches (at most eight, most recently used first); else it walks.
    Hot under a 40-frame library stretch: ≈ 3.5 k instructions a search, against
    7.5 k when the search was keyed by its start frame (two jumps, two frame objects,
    two tuple keys). Not seen: a stack that differs from a learnt one only in the
    middle -- the same call instruction reaching the hook through as many frames, with
    an application frame among them -- is named by the outer frame: the request may put
    that frame at any depth of the middle, and reading the middle is the walk (≈ 2.4 k
    instructions a frame hot, against ≈ 3.5 k for the whole jump; no check of fewer
    frames sees it: docs/dev-notes/issue-24.md, h24t). A template
    engine's node frame (one call instruction renders every node, so the node is read
    from the frame) is filed under the frame just below it, its node's ``render``: a
    repeat jumps there and names the frame above if it is the learnt node frame -- the
    innermost node, as the walk would. ≈ 8.1 k instructions a search hot (the node read
    by ``f_locals``: ≈ 1.9 k), against 10.4 k with a second jump to the node frame."""

    __slots__ = ("_cwd", "_far", "_keep", "_lines", "_nodes", "_paths", "_sites", "_verdict",
                 "max_depth",
                 "max_entries", "roots", "templates")

    def __init__(self, extra_library_roots: tuple[str, ...] = (), max_depth: int = 250,
                 max_entries: int = 50_000) -> None:
        self.roots = _library_roots() + tuple(os.path.abspath(p) + os.sep for p in extra_library_roots)
        self.max_depth = max_depth
        self.max_entries = max_entries
        self._verdict: dict[int, bool] = {}
        self._keep: list[CodeType] = []
        self._lines: dict[tuple[int, int], str] = {}
        #: the caller's ``depth`` -> the reaches its walks ended at, most recent first.
        self._paths: dict[int, list[int]] = {}
        #: (id(code), offset, reach) of an application frame a walk ended at -> its site.
        self._sites: dict[tuple[int, int, int], str] = {}
        #: the same of the frame just below a template engine's node frame (the node's
        #: ``render``) -> what the node frame above it must be and how to name it.
        self._nodes: dict[tuple[int, int, int], _Node] = {}
        #: Across a greenlet (SQLAlchemy's asyncio layer): the caller's ``depth`` ->
        #: [(frames from find to the end of the greenlet's stack, frames up the parent
        #: greenlet's)], most recent first; and (id(code), offset, both) -> the site.
        self._far: tuple[dict[int, list[tuple[int, int]]], dict[tuple[int, int, int, int], str]] = ({}, {})
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
                self._sites.clear()
                self._nodes.clear()
                self._far[0].clear()
                self._far[1].clear()
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
        try:  # the hook's most recent reach: one jump, one look-up
            reach = self._paths[depth][0]
            frame = _getframe(reach)
            key = (id(frame.f_code), frame.f_lasti, reach)
            site = self._sites.get(key)
            if site is not None:
                return site
            # The frame just below a template node (the node's ``render``): the node above.
            node = self._nodes.get(key)
            if node is not None:
                site = _node_site(frame, node)
                if site is not None:
                    return site
        except (KeyError, ValueError):  # nothing learnt for this hook, or a shorter stack
            pass
        return self._search(depth)

    def _search(self, depth: int) -> str | None:
        """The hook's other reaches (most recent first); else the walk. (One frame more
        than :meth:`find`: every jump is one further.)"""
        reaches = self._paths.get(depth)
        if reaches is not None:
            sites, nodes = self._sites, self._nodes
            for reach in reaches[1:]:
                try:
                    frame = _getframe(reach + 1)
                    key = (id(frame.f_code), frame.f_lasti, reach)
                    site = sites.get(key)
                    if site is None:
                        node = nodes.get(key)
                        if node is None:
                            continue  # not learnt here
                        site = _node_site(frame, node)
                        if site is None:
                            continue  # not the learnt node's frame above
                except ValueError:
                    continue
                _to_front(reaches, reach)
                return site
        far = self._far[0].get(depth)
        if far is not None:
            site = self._across(far)
            if site is not None:
                return site
        return self._walk(depth)

    def _across(self, far: list[tuple[int, int]]) -> str | None:
        """A path learnt across a greenlet: the stack here ends exactly where it did,
        and the frame as far up the parent greenlet's stack has the learnt call
        instruction. (Two frames more than :meth:`find`.)"""
        sites = self._far[1]
        for path in far:
            ends, up = path
            try:
                if _getframe(ends + 1).f_back is not None:
                    continue
            except ValueError:
                continue
            frame = _greenlet_parent_frame()
            for _ in range(up):
                if frame is None:
                    break
                frame = frame.f_back
            if frame is None:
                continue
            site = sites.get((id(frame.f_code), frame.f_lasti, ends, up))
            if site is not None:
                if path is not far[0]:
                    _to_front(far, path)
                return site
        return None

    def _walk(self, depth: int) -> str | None:
        """Frame by frame from :meth:`find`'s start (``depth`` frames above find's
        caller; this frame is two below find); learns where it ended."""
        try:
            under: FrameType = _getframe(depth + 1)  # the frame below the start
        except ValueError:
            return None
        verdict, templates = self._verdict, self.templates
        frame, below = under.f_back, under
        n, reach, crossed, ends = self.max_depth, depth, 0, 0
        while frame is not None and n:
            code = frame.f_code
            cid = id(code)
            lib = verdict.get(cid)
            if lib is None:
                lib = self.is_library(code)
            if not lib or cid in templates:
                site = self._site(frame)
                if site is not None:
                    if not crossed:
                        self._learn(depth, frame, reach, site, below)
                    elif crossed == 1 and cid not in templates:
                        self._learn_far(depth, (cid, frame.f_lasti, ends, reach - ends), site)
                    return site
            below = frame
            frame = frame.f_back
            reach += 1
            n -= 1
            if frame is None and n:
                frame = _greenlet_parent_frame()
                crossed += 1
                ends = reach
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

    def _learn(self, depth: int, frame: FrameType, reach: int, site: str,
               below: FrameType) -> None:
        """File the path a walk ended at: ``frame``, ``reach`` frames above :meth:`find`,
        ``below`` the frame under it."""
        if len(self._sites) + len(self._nodes) >= self.max_entries:
            self._sites.clear()
            self._nodes.clear()
        code = frame.f_code
        describe = self.templates.get(id(code))
        if describe is None:
            self._sites[(id(code), frame.f_lasti, reach)] = site
        else:
            # A node's site is its own, and every node renders through one call
            # instruction: filed under the frame below it, its ``render``, a reach nearer.
            reach -= 1
            self._nodes[(id(below.f_code), below.f_lasti, reach)] = (
                code, frame.f_lasti, describe, below.f_code)
        _to_front(self._paths.setdefault(depth, []), reach)

    def _learn_far(self, depth: int, key: tuple[int, int, int, int], site: str) -> None:
        far, sites = self._far
        if len(sites) >= self.max_entries:
            sites.clear()
        sites[key] = site
        _to_front(far.setdefault(depth, []), (key[2], key[3]))

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


T = TypeVar("T")


def _to_front(reaches: list[T], reach: T) -> None:
    """``reach`` first among a hook's reaches (or paths across a greenlet), which keep
    the newest eight. Without a lock: another thread may have moved or dropped it
    meanwhile."""
    with suppress(ValueError):
        reaches.remove(reach)
    reaches.insert(0, reach)
    del reaches[8:]


#: What a path that ends at a template node learns: the node frame's code, its call
#: instruction, how to name its node, and the code below it (kept alive: its id is in
#: the key).
_Node = tuple[CodeType, int, TemplateFrame, CodeType]


def _node_site(below: FrameType, node: _Node) -> str | None:
    """The site of the node that ``below`` (a learnt node's ``render``) renders for, if
    the frame above it is the learnt node frame; the innermost node, then, as the walk
    would name it."""
    above = below.f_back
    if above is None or above.f_code is not node[0] or above.f_lasti != node[1]:
        return None
    try:
        return node[2](above)
    except Exception:
        return None


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
