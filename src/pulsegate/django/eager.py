"""Unused eager loads on the Django ORM (``unused_eager_loads``, off by default): the
relationships a queryset's ``select_related``/``prefetch_related`` loaded, handed to
:mod:`pulsegate.queries.eager` with the statement that ran them, and reads of those
relationships tracked -- only descriptors some queryset loaded eagerly pay it: their
class becomes a subclass whose ``__get__`` reports the read first."""

from __future__ import annotations

from typing import Any

from pulsegate.queries import eager
from pulsegate.queries.events import hook_faults

__all__ = ["record_queryset"]

_tracked: dict[type, type] = {}


def _track(descriptor: Any) -> None:
    cls = type(descriptor)
    if cls in _tracked.values():
        return
    sub = _tracked.get(cls)
    if sub is None:
        def __get__(self: Any, instance: Any, owner: Any = None) -> Any:
            if instance is not None:
                eager.touch(id(self))
            return cls.__get__(self, instance, owner)

        sub = _tracked[cls] = type(f"Tracked{cls.__name__}", (cls,), {"__get__": __get__})
    descriptor.__class__ = sub


def _eager_names(qs: Any) -> list[tuple[Any, str, str]]:
    """``(descriptor, "Book.author", 'select_related("author")')`` for each relationship
    ``qs`` loads eagerly (named ``select_related`` paths and ``prefetch_related`` lookups;
    ``select_related()`` without names is left alone)."""
    out: list[tuple[Any, str, str]] = []

    def walk(model: Any, tree: dict[str, Any], prefix: str) -> None:
        for name, sub in tree.items():
            descriptor = getattr(model, name, None)
            if descriptor is None:
                continue
            path = f"{prefix}{name}"
            out.append((descriptor, f"{model.__name__}.{name}", f'select_related("{path}")'))
            field = model._meta.get_field(name)
            if sub and field.related_model is not None:
                walk(field.related_model, sub, f"{path}__")

    selected = qs.query.select_related
    if isinstance(selected, dict):
        walk(qs.model, selected, "")
    for lookup in qs._prefetch_related_lookups:
        path = getattr(lookup, "prefetch_to", lookup)
        if not isinstance(path, str):
            continue
        first = path.split("__")[0]
        descriptor = getattr(qs.model, first, None)
        if descriptor is not None:
            out.append((descriptor, f"{qs.model.__name__}.{first}",
                        f'prefetch_related("{path}")'))
    return out


def record_queryset(sink: Any, qs: Any, first_statement: int) -> None:
    """After ``qs`` was fetched in ``sink``: its eager loads, named with the statement
    that ran (the sink's statement number ``first_statement``)."""
    try:
        names = _eager_names(qs)
        if not names:
            return
        queries = getattr(sink, "queries", None) or []
        ev = queries[first_statement] if first_statement < len(queries) else None
        for descriptor, name, option in names:
            _track(descriptor)
            eager.record(sink, id(descriptor), eager.EagerLoad(
                name, option, ev.sql if ev is not None else "", ev.call_site if ev else None,
                ev.db if ev is not None else None, "django"))
    except Exception as exc:  # fail open
        hook_faults.record("django eager loads", exc)
