"""Call sites inside Django templates: a statement run while a template renders (a lazy
relation read by ``{{ book.author.name }}``) is named by the template file and the line
of the tag that ran it, not by Django's rendering code.

Django renders a template by calling ``Node.render_annotated`` on each node; the
innermost such frame is the node whose tag was running, and nodes keep their origin
(``origin.name``, the file) and token (``token.lineno``) whatever ``DEBUG`` is. The
finder asks :func:`node_site` about those frames only; a node's site is computed once
(nodes live as long as the cached template).
"""

from __future__ import annotations

from types import FrameType
from typing import Any

from pulsegate.bounded import BoundedLRU
from pulsegate.queries import callsite

__all__ = ["node_site", "register"]

#: id(node) -> (node, site): the node is kept so its id stays its own while it is a key.
_sites: BoundedLRU[int, tuple[Any, str | None]] = BoundedLRU(20_000)


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
    _sites.put(key, (node, site))
    return site


def register() -> None:
    """Teach the call-site finder Django's node frames; idempotent."""
    from django.template.base import Node

    callsite.default_finder.register_template_frame(Node.render_annotated.__code__, node_site)
