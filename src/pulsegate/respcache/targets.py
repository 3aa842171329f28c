"""What an allow-list entry or an invalidation names: a route (with or without a
method), a path prefix, everything, or one path.

>>> t = Target("GET /items*")
>>> t.matches("GET", "/items/3", "/items/{id}"), t.matches("GET", "/users/3", None)
(True, False)
>>> Target("/items/{id}").matches_entry("GET /items/{id}", "/items/3?x=1")
True
>>> Target.path("/items/3").matches_entry("GET /items/{id}", "/items/3?x=1")
True
>>> Target("*").wire()
('', 'prefix', '')
"""

from __future__ import annotations

__all__ = ["EVERYTHING", "Target"]


class Target:
    """A configured target: ``"GET /items/{id}"`` or ``"/items/{id}"`` (a route),
    ``"/items*"`` (a path prefix; ``"*"`` everything); :meth:`path` one path."""

    __slots__ = ("exact", "method", "prefix", "route")

    def __init__(self, text: str) -> None:
        method, _, rest = text.partition(" ") if " " in text else ("", "", text)
        self.method = None if method in ("", "*") else method.upper()
        self.prefix = rest[:-1] if rest.endswith("*") else None
        self.route = None if rest.endswith("*") else rest
        self.exact: str | None = None

    @classmethod
    def path(cls, path: str) -> Target:
        """The entries of one path (any query): a write's ``$path``."""
        target = cls("*")
        target.prefix = None
        target.exact = path
        return target

    def matches(self, method: str, path: str, route: str | None) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.exact is not None:
            return path == self.exact
        if self.prefix is not None:
            return path.startswith(self.prefix)
        return self.route == (route if route is not None else path)

    def matches_entry(self, endpoint: str, path: str) -> bool:
        """Whether the entry of ``endpoint`` ("GET /items/{id}") for ``path`` (with its
        query) is named."""
        method, _, route = endpoint.partition(" ")
        return self.matches(method, path.partition("?")[0], route)

    def wire(self) -> tuple[str, str, str]:
        """(method or "", kind, value): the form the shared store's script matches, kind
        one of ``exact``, ``prefix``, ``route`` -- :meth:`matches` again, in Lua."""
        if self.exact is not None:
            return self.method or "", "exact", self.exact
        if self.prefix is not None:
            return self.method or "", "prefix", self.prefix
        return self.method or "", "route", self.route or ""


#: Every entry.
EVERYTHING = (Target("*"),)
