"""Call sites inside Django templates: a statement run while a template renders (a lazy
relation read by ``{{ book.author.name }}``) is named by the template file and the line
of the tag that ran it, not by Django's rendering code.

Django renders a template by calling ``Node.render_annotated`` on each node; the
innermost such frame is the node whose tag was running, and nodes keep their origin
(``origin.name``, the file) and token (``token.lineno``) whatever ``DEBUG`` is. The
finder asks :func:`node_site` about those frames only; a node's site is computed once
per node (nodes live as long as the cached template). The node is held weakly: a
template parsed at each render (no cached loader, ``Engine.from_string``) must die with
its render, its text and subtree with it (kept strongly, 300 renders of a page with
100 kB under an ``{% if %}`` held 30 MB; up to 20 000 nodes could be).
"""

from __future__ import annotations

import weakref
from types import FrameType
from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries import callsite

__all__ = ["node_site", "register"]

_Ref = weakref.KeyedRef[int, Any]
#: id(node) -> (a weak reference to the node, site). The reference's callback drops the
#: entry as the node dies, before its id can be another node's: so a hit needs no check.
_sites: BoundedLRU[int, tuple[_Ref, str | None]] = BoundedLRU(20_000)


def _dead(ref: _Ref) -> None:
    """A remembered node died: its id is free for another."""
    _sites.pop(ref.key, None)


def node_site(frame: FrameType) -> str | None:
    """``path:line in template`` of the node rendering in ``frame`` (None: not known)."""
    node = frame.f_locals.get("self")
    key = id(node)
    hit = _sites.get(key)
    if hit is not None:
        return hit[1]
    origin, token = getattr(node, "origin", None), getattr(node, "token", None)
    name, line = getattr(origin, "name", None), getattr(token, "lineno", None)
    site = None
    if isinstance(name, str) and isinstance(line, int) and not name.startswith("<"):
        site = f"{callsite.default_finder.relative(name)}:{line} in template"
    try:
        _sites.put(key, (weakref.KeyedRef(node, _dead, key), site))
    except TypeError:  # a node class with __slots__ and no __weakref__: not remembered
        pass
    return site


def register() -> None:
    """Teach the call-site finder Django's node frames; idempotent."""
    from django.template.base import Node

    callsite.default_finder.register_template_frame(Node.render_annotated.__code__, node_site)
