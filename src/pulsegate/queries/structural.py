r"""The structural N+1 rule: what the ORM knows about where an instance came from.

The repeat-count rule (same shape :math:`\ge` ``min_repeats`` times) needs a loop long
enough to see; test fixtures have two or three objects. The ORM hooks know more: a lazy
load names the relationship it serves and the result the parent instance came from
(:attr:`~pulsegate.queries.QueryEvent.source`). Lazy loads are grouped by
``(relationship, load, call site)`` and a group is

* ``n_plus_one`` when two or more of its loads serve instances of **one multi-row
  result** (:math:`rows \ge 2`) -- whatever the loop's length, as django-zeal and
  nplusone decide;
* ``single_load_loop`` when two or more of its loads serve instances that were each
  **loaded singly** (``get``, ``first``, ``[0]``, ``session.get``) from the same line:
  objects fetched one by one in a loop, then a relationship read for each -- the fix
  names both the one query for the objects and the relationship to load with it;
* ``n_plus_one`` too when two or more of its loads, with different parameters, serve
  instances whose origin is unknown -- created rather than queried, or loaded before
  the request or ``capture()`` began (a pytest fixture's objects): as django-zeal, only
  instances known to be loaded singly are exempt;
* nothing otherwise: single loads read on separate lines are not a loop (django-zeal's
  exemption), and one lazy load is not an N+1.

With ``single_lazy_loads=True`` (nplusone's rule, off by default) a relationship load
(``collection``, ``scalar``) is an ``n_plus_one`` as soon as *one* serves an instance
fetched by a list form (``.all()``, iteration, ``.scalars()``; Django: iterating a
queryset), even a one-row result: nplusone judges by the query's form
(:attr:`ResultToken.single <pulsegate.queries.events.ResultToken>`), not its rows.

Single-object lookups (``load == "get"``: Django ``QuerySet.get``) from one call site
with two or more distinct parameter sets are an ``n_plus_one`` (django-zeal's
``Model.get()`` rule).
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter

from pulsegate.queries.events import QueryEvent, ResultToken
from pulsegate.queries.fingerprint import SQLFingerprint

__all__ = ["FORM_LOADS", "LAZY_LOADS", "LazyGroup", "is_structural"]

_SOURCE = itemgetter(12)

#: ``QueryEvent.load`` values that are one lazy load for one instance.
LAZY_LOADS = frozenset({"collection", "scalar", "deferred", "count", "generic", "prefetch",
                        "expired"})
#: The loads nplusone judges by the parent query's form (``single_lazy_loads``): its
#: lazy-load signals are relationship loads only (Django's related descriptors and
#: managers, SQLAlchemy's ``LazyLoader``); counts, deferred columns, generic foreign keys
#: and per-instance ``prefetch_related_objects`` keep the two-load rule.
FORM_LOADS = frozenset({"collection", "scalar"})


def is_structural(ev: QueryEvent) -> bool:
    """True when the structural rule, not the repeat count, decides about ``ev``: a
    lazy load or ``get`` the ORM hook marked."""
    return (ev.load == "get" or ev.load in LAZY_LOADS) and ev.relationship is not None \
        and ev.orm is not None


class LazyGroup:
    """The lazy loads of one relationship from one call site."""

    __slots__ = ("count", "first", "fp", "load", "ms", "orm", "params", "path", "relationship",
                 "singles", "site", "tokens")

    def __init__(self, fp: SQLFingerprint, ev: QueryEvent, index: int) -> None:
        self.fp = fp
        self.first = index
        self.count = 0
        self.ms = 0.0
        self.load = ev.load
        self.orm = ev.orm
        self.relationship = ev.relationship
        self.site = ev.call_site
        self.path = ev.source[1] if ev.source is not None else ""
        #: result token -> lazy loads served from it
        self.tokens: dict[object, int] = {}
        self.singles = 0
        self.params: set[int | None] = set()

    def add(self, evs: list[QueryEvent], ms: float) -> None:
        """Count a bucket of its loads (same text and call site) taking ``ms``
        milliseconds together, by the result each load's instance came from. The loads of
        one result share its ``source`` tuple (one per lookup path), so counting the
        tuples is one C loop; instances of unknown origin (``None``) are told apart by
        their parameters instead."""
        self.count += len(evs)
        self.ms += ms
        by_source = Counter(map(_SOURCE, evs))
        if by_source.pop(None, 0):
            self.params.update(ev.params_hash for ev in evs if ev.source is None)
        tokens = self.tokens
        for (token, _path), n in by_source.items():
            tokens[token] = tokens.get(token, 0) + n

    def kind(self, single_lazy_loads: bool = False) -> str | None:
        """``n_plus_one``, ``single_load_loop`` or None (see the module docstring).
        ``single_lazy_loads``: nplusone's rule for relationship loads -- one lazy load of
        an instance fetched by a list form is already an N+1, whatever its row count."""
        if len(self.params) >= 2:  # gets, or loads for instances of unknown origin
            return "n_plus_one"
        by_form = single_lazy_loads and self.load in FORM_LOADS
        singles = 0
        for token, n in self.tokens.items():
            if isinstance(token, ResultToken):
                rows, single = token.rows, token.single
            else:
                rows, single = 0, False
            if by_form:
                if rows >= 1 and not single:
                    return "n_plus_one"
            elif rows >= 2 and n >= 2:
                return "n_plus_one"
            if rows == 1:
                singles += 1
        return "single_load_loop" if singles >= 2 else None


def single_load_fix(relationship: str, load: str | None, orm: str | None) -> str:
    """The advice for a loop of single loads followed by a lazy load: one query for the
    objects, with the relationship loaded eagerly."""
    model, _, attr = relationship.partition(".")
    if orm == "django":
        eager = (f'select_related("{attr}")' if load == "scalar"
                 else f'only(..., "{attr}")' if load == "deferred"
                 else f'prefetch_related("{attr}")')
        return (f"{model} objects are fetched one at a time in a loop and {relationship} is "
                f"then loaded for each: fetch them in one query, "
                f"{model}.objects.filter(pk__in=ids).{eager} (or in_bulk(ids) and "
                f"prefetch_related_objects(objs, \"{attr}\")), instead of .get()/.first() "
                f"per item")
    if orm == "sqlalchemy":
        eager = (f"joinedload({relationship})" if load == "scalar"
                 else f"undefer({relationship})" if load == "deferred"
                 else f"selectinload({relationship})")
        return (f"{model} objects are fetched one at a time in a loop and {relationship} is "
                f"then loaded for each: fetch them in one query, session.scalars(select("
                f"{model}).where({model}.id.in_(ids)).options({eager}))")
    return (f"objects fetched one at a time in a loop, then {relationship} loaded for each: "
            f"fetch them in one query with {relationship} loaded eagerly")
