"""The concrete fix for each detection, in the ORM's own words when it is known
(``options(selectinload(Author.books))``, ``prefetch_related("books")``,
``Author.objects.in_bulk(ids)``), naming the model through a resolver each ORM adapter
registers (table name -> model name and primary-key attribute)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pulsegate.queries.fingerprint import SQLFingerprint

__all__ = ["register_model_resolver", "suggest", "table_of"]

_TABLE = re.compile(r"\b(?:from|into|update|join)\s+((?:\"[^\"]+\"|`[^`]+`|[\w$]+)"
                    r"(?:\.(?:\"[^\"]+\"|`[^`]+`|[\w$]+))?)")
# A lookup by primary key alone: ``... where [table.]id = ? [limit ?]`` (quoted or not).
_PK_LOOKUP = re.compile(r" where (?:[^ ]+\.)?(?:\"id\"|`id`|id) = \?(?: limit \?)?(?: offset \?)?$")

#: ``(orm, table) -> (model name, primary-key attribute) | None``: adapters register one
#: so suggestions can name the model (``select(Author).where(Author.id.in_(ids))``).
ModelResolver = Callable[[str], "tuple[str, str] | None"]
_RESOLVERS: dict[str, ModelResolver] = {}


def register_model_resolver(orm: str, resolver: ModelResolver) -> None:
    """Let the ``orm`` adapter translate table names into model names for suggestions."""
    _RESOLVERS[orm] = resolver


def table_of(sql: str) -> str | None:
    """The first table a normalised statement reads or writes, unquoted."""
    m = _TABLE.search(sql)
    if m is None:
        return None
    return m.group(1).split(".")[-1].strip('"`')


def _model(orm: str | None, table: str | None) -> tuple[str, str]:
    if table is None:
        return "Model", "id"
    resolver = _RESOLVERS.get(orm or "")
    if resolver is not None:
        try:
            found = resolver(table)
        except Exception:
            found = None
        if found is not None:
            return found
    return "".join(p.capitalize() for p in table.split("_")) or "Model", "id"


def suggest(kind: str, fp: SQLFingerprint, relationship: str | None, load: str | None,
            orm: str | None, path: str = "") -> str:
    """The concrete fix for one detection, in the ORM's own words when it is known.
    ``path`` is the lookup path from the list query's model to the instance (``"author"``
    for a post's author joined by ``select_related``)."""
    attr = relationship.rsplit(".", 1)[-1] if relationship else None
    # The table (a regex over the text) is read only by the advice that names a model:
    # a relationship's advice names the relationship.
    if kind == "write_loop":
        model, pk = _model(orm, table_of(fp.text))
        if fp.verb == "insert":
            if orm == "django":
                return f"create the rows at once: {model}.objects.bulk_create([...])"
            if orm == "sqlalchemy":
                return (f"insert all rows in one statement: session.execute(insert({model}), "
                        f"[{{...}}, ...]) or insert({model}).values([...])")
            return "insert all rows in one statement (multi-row VALUES or executemany)"
        if fp.verb == "update":
            if orm == "django":
                return (f"update at once: {model}.objects.bulk_update(objs, [fields]) or "
                        f"{model}.objects.filter(...).update(...)")
            if orm == "sqlalchemy":
                return (f"update by primary key in one call: session.execute(update({model}), "
                        f"[{{\"{pk}\": ..., ...}}, ...])")
            return "update all rows in one statement (executemany or one UPDATE ... WHERE)"
        if orm == "django":
            return f"delete at once: {model}.objects.filter(pk__in=ids).delete()"
        if orm == "sqlalchemy":
            return f"delete at once: session.execute(delete({model}).where({model}.{pk}.in_(ids)))"
        return "delete all rows in one statement (DELETE ... WHERE id IN (...))"
    if kind == "repeated_query":
        return ("the same statement with the same parameters ran repeatedly: run it once "
                "and reuse the result (hoist it out of the loop or cache it)")
    # n_plus_one
    if load == "expired" and relationship:
        if orm == "sqlalchemy":
            return (f"{relationship} rows are reloaded one by one after being expired "
                    f"(commit, refresh, expire): commit once after the loop, or "
                    f"Session(expire_on_commit=False), or reload them in one query")
        return f"{relationship} rows are reloaded one by one: reload them in one query"
    if load == "get" and relationship:
        model = relationship.partition(".")[0]
        return (f"fetch them in one query: {model}.objects.in_bulk(ids) (or "
                f"filter(pk__in=ids)) instead of .get() per item")
    if relationship and attr:
        if load == "deferred":
            if orm == "django":
                lookup = f"{path}__{attr}" if path else attr
                return (f"{relationship} is deferred: add \"{lookup}\" to .only(...) or drop "
                        f"it from .defer(...)")
            return f"{relationship} is deferred: load it with the rows, options(undefer({relationship}))"
        if load == "count":
            if orm == "django":
                return f"count in the list query: .annotate(Count(\"{attr}\"))"
            return f"count in the list query: a GROUP BY subquery joined to the parents ({relationship})"
        if orm == "django":
            lookup = f"{path}__{attr}" if path else attr
            if load == "generic":
                return (f"prefetch_related(\"{lookup}\") (a GenericForeignKey cannot be "
                        f"select_related; GenericPrefetch(\"{attr}\", [querysets]) narrows "
                        f"each content type)")
            if load == "prefetch":
                return (f"prefetch_related_objects(objs, \"{lookup}\") once for the whole "
                        f"list (or prefetch_related(\"{lookup}\") on its queryset), not per "
                        f"instance")
            if load == "scalar":
                return f"select_related(\"{lookup}\")"
            return f"prefetch_related(\"{lookup}\")"
        if orm == "sqlalchemy":
            if load == "scalar":
                return f"options(joinedload({relationship}))"
            return f"options(selectinload({relationship}))"
        return f"load {relationship} eagerly with the list query"
    model, pk = _model(orm, table_of(fp.text))
    if fp.text.startswith("select count("):
        if orm == "django":
            return ("count in the list query: .annotate(Count(...)) or one "
                    ".values(...).annotate(Count(...)) instead of .count() per item")
        return ("count all items in one grouped query (GROUP BY the parent key) "
                "instead of one COUNT per item")
    if _PK_LOOKUP.search(fp.text):
        if orm == "django":
            return f"fetch them in one query: {model}.objects.in_bulk(ids) instead of .get() per item"
        if orm == "sqlalchemy":
            return (f"session.get() in a loop: load them in one IN query, "
                    f"session.scalars(select({model}).where({model}.{pk}.in_(ids)))")
        return "fetch all rows in one query (WHERE id IN (...)) instead of one per item"
    if orm == "django":
        return ("one query per item: fetch all items at once (filter(...__in=ids), "
                "select_related/prefetch_related) and group them in Python")
    if orm == "sqlalchemy":
        return ("one query per item: fetch all items at once (.where(col.in_(ids)), "
                "selectinload/joinedload) and group them in Python")
    return "one query per item: fetch all items in one query (WHERE key IN (...)) or eagerly"

