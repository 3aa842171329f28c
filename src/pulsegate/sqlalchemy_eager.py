"""Unused eager loads on SQLAlchemy (``unused_eager_loads``, off by default): which
relationships a statement's loader options load eagerly, and whether anything reads them.

:func:`record_eager` is called by the statement hook of :mod:`pulsegate.sqlalchemy` only
while :data:`pulsegate.queries.eager.watching` is on; it hands each eager load to
:mod:`pulsegate.queries.eager` and makes reads of that relationship's class attribute
report to :func:`pulsegate.queries.eager.touch` -- so only relationships some query
loaded eagerly pay for the tracking, and only once the option is on somewhere.
"""

from __future__ import annotations

from typing import Any

from pulsegate.queries import eager
from pulsegate.queries.events import hook_faults

__all__ = ["record_eager"]

_UNKNOWN = object()
_EAGER = "_pulsegate_eager"
_EAGER_STRATEGIES = {"selectin": "selectinload", "joined": "joinedload",
                     "subquery": "subqueryload", "immediate": "immediateload"}


def record_eager(sink: Any, context: Any, statement: str, site: str | None) -> None:
    """Hand the eager-loader options of this statement to :mod:`pulsegate.queries.eager`
    (worked out once per compiled statement) and track reads of those relationships."""
    compiled = getattr(context, "compiled", None)
    options: Any = getattr(compiled, _EAGER, _UNKNOWN)
    if options is _UNKNOWN:
        options = _eager_options(compiled)
        try:
            setattr(compiled, _EAGER, options)
        except (AttributeError, TypeError):
            pass
    for attr, name, option in options:
        _track(attr)
        eager.record(sink, id(attr), eager.EagerLoad(name, option, statement, site,
                                                      context.dialect.name, "sqlalchemy"))


def _eager_options(compiled: Any) -> tuple[tuple[Any, str, str], ...]:
    """``(class attribute, "Author.books", "selectinload(Author.books)")`` for each
    relationship a statement's loader options load eagerly."""
    found = []
    for opt in getattr(getattr(compiled, "statement", None), "_with_options", ()) or ():
        for element in getattr(opt, "context", ()) or ():
            strategy = dict(getattr(element, "strategy", None) or ()).get("lazy")
            fn = _EAGER_STRATEGIES.get(strategy) if isinstance(strategy, str) else None
            path = tuple(getattr(getattr(element, "path", None), "path", ()) or ())
            if fn is None or len(path) < 2:
                continue
            prop = path[-2] if len(path) % 2 == 1 else path[-1]
            attr = getattr(prop, "class_attribute", None)
            parent = getattr(getattr(prop, "parent", None), "class_", None)
            if attr is None or parent is None:
                continue
            name = f"{parent.__name__}.{prop.key}"
            found.append((attr, name, f"{fn}({name})"))
    return tuple(found)


_tracked_class: Any = None


def _track(attr: Any) -> None:
    """Make reads of ``attr`` (a relationship's class attribute) tell
    :func:`pulsegate.queries.eager.touch`: its class becomes a subclass whose
    ``__get__`` reports first -- only relationships some query loaded eagerly pay it."""
    global _tracked_class
    from sqlalchemy.orm.attributes import InstrumentedAttribute

    if type(attr) is not InstrumentedAttribute:
        return  # tracked already, or a kind of attribute we leave alone
    if _tracked_class is None:
        class TrackedAttribute(InstrumentedAttribute[Any]):
            __slots__ = ()
            inherit_cache = True

            def __get__(self, instance: Any, owner: Any = None) -> Any:
                if instance is not None:
                    eager.touch(id(self))
                return InstrumentedAttribute.__get__(self, instance, owner)

        _tracked_class = TrackedAttribute
    try:
        attr.__class__ = _tracked_class
    except TypeError as exc:  # a layout we do not know: never track it
        hook_faults.record("sqlalchemy eager tracking", exc)
