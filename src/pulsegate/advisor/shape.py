"""What a redacted statement asks of each table: read from its fingerprint text.

The fingerprint text (:mod:`pulsegate.queries.fingerprint`) is lower-cased, has every
literal replaced by ``?`` and its tokens separated by single spaces, so a small
linear tokenizer suffices: no SQL parser, no raw statement, no parameter value. What it
finds is what an index or a rewrite needs:

* the tables and their aliases (``from``/``join`` *table* [``as``] *alias*);
* the predicates ``[alias.]column op rhs`` with ``op`` one of ``=``, ``<``, ``>``,
  ``<=``, ``>=``, ``in``, ``like``, ``between``, ``is`` (null tests), and whether the
  right-hand side is a parameter (``?``) or another table's column (a join);
* the ``order by`` columns of the outermost query, and whether it has a ``limit``;
* the select list: ``*`` / ``alias.*`` or the columns named.

Anything it cannot read is left out: a finding is only made from what was read.

>>> s = shape_of("select o.id from orders as o join customers c on c.id = o.customer_id "
...              "where o.status = ? and o.created_at > ? order by o.created_at desc limit ?")
>>> sorted(set(s.tables.values())), s.tables["o"], s.tables["c"]
(['customers', 'orders'], 'orders', 'customers')
>>> [(p.table, p.column, p.op, p.join) for p in s.predicates]
... # doctest: +NORMALIZE_WHITESPACE
[('orders', 'customer_id', '=', 'customers.id'), ('customers', 'id', '=', 'orders.customer_id'),
 ('orders', 'status', '=', None), ('orders', 'created_at', '>', None)]
>>> s.order_by, s.limit
([('o', 'created_at', 'desc')], True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Predicate", "Shape", "explainable", "shape_of"]

# an identifier, plain or quoted ("x", `x` as MySQL and Django's MySQL backend write
# them, [x]); a qualified name ("app_book"."id") is one token
_IDENT = r'"[^"]*"|`[^`]*`|\[[^\]]*\]|[a-z_][a-z0-9_$]*'
_TOKEN = re.compile(rf"(?:{_IDENT})(?:\.(?:{_IDENT}|\*))*"
                    r"|\?|\$\d+|[(),;*]|[<>!=|:]+|\S")
_KEYWORDS = frozenset([
    "select", "from", "where", "and", "or", "not", "join", "inner", "left", "right", "full",
    "outer", "cross", "on", "using", "as", "group", "by", "order", "having", "limit",
    "offset", "union", "all", "distinct", "in", "is", "null", "like", "ilike", "between",
    "exists", "case", "when", "then", "else", "end", "asc", "desc", "nulls", "first",
    "last", "with", "recursive", "values", "insert", "update", "delete", "set", "into",
    "returning", "for", "share", "of", "nowait", "skip", "locked", "lateral", "natural",
    "except", "intersect", "true", "false", "any", "some", "cast", "coalesce", "count",
    "sum", "avg", "min", "max", "lower", "upper"])
_COMPARE = {"=", "<", ">", "<=", ">=", "in", "like", "ilike", "between", "is"}
_STOP_ORDER = {"limit", "offset", ")", "for", "union", "except", "intersect", ";"}


@dataclass(frozen=True)
class Predicate:
    """``table.column op`` a parameter, or (``join``) another table's ``table.column``."""

    table: str
    column: str
    op: str
    join: str | None = None
    #: the qualifier the statement used (``o`` in ``o.customer_id``), None unqualified
    alias: str | None = None

    @property
    def equality(self) -> bool:
        return self.op in ("=", "in", "is")


@dataclass
class Shape:
    tables: dict[str, str] = field(default_factory=dict)  # alias (or name) -> table
    predicates: list[Predicate] = field(default_factory=list)
    order_by: list[tuple[str | None, str, str]] = field(default_factory=list)
    limit: bool = False
    select_star: bool = False
    select_columns: list[tuple[str | None, str]] = field(default_factory=list)

    def table_of(self, qualifier: str | None, column: str,
                 columns: dict[str, set[str]] | None = None) -> str | None:
        """The table a column reference names: by its qualifier, or (unqualified) the
        only table of the statement, or the only one whose ``columns`` hold it."""
        if qualifier is not None:
            return self.tables.get(qualifier)
        names = sorted(set(self.tables.values()))
        if len(names) == 1:
            return names[0]
        if columns:
            owners = [t for t in names if column in columns.get(t, set())]
            if len(owners) == 1:
                return owners[0]
        return None


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def explainable(text: str, verb: str) -> str | None:
    """Why a fingerprint must not be explained (None: it may). Only single read-only
    queries are: ``select``, or ``with`` whose body writes nothing."""
    toks = tokens(text)
    if verb not in ("select", "with") or not toks:
        return "not a query" if verb else "no statement"
    if ";" in toks[:-1]:
        return "several statements"
    words = set(toks)
    if words & {"insert", "update", "delete", "merge", "into", "create", "drop", "alter",
                "truncate", "copy", "call", "lock", "nextval", "setval", "pg_sleep"}:
        return "writes or has side effects"
    if text.startswith("<unparsed"):
        return "could not be read"
    if "..." in text:
        return "cut short (longer than the scanned length)"
    return None


def _colref(tok: str) -> tuple[str | None, str] | None:
    if not tok or (tok[0] in '"`[' and "." not in tok):
        name = tok.strip('"`[]')
        return (None, name) if name else None
    if not (tok[0].isalpha() or tok[0] == "_" or tok[0] in '"`['):
        return None
    parts = tok.split(".")
    if len(parts) > 2 or parts[-1] == "*":
        return None
    if len(parts) == 1:
        if tok in _KEYWORDS:
            return None
        return None, tok
    return parts[0].strip('"`[]'), parts[1].strip('"`[]')


def shape_of(text: str) -> Shape:
    """Read tables, predicates, ordering and select list off a fingerprint text."""
    toks = tokens(text)
    # glue split operators back: the fingerprint writes ">=" as "> ="
    glued: list[str] = []
    for t in toks:
        if glued and t in ("=", ">") and glued[-1] in ("<", ">", "!") and glued[-1] + t in (
                "<=", ">=", "!=", "<>"):
            glued[-1] += t
        else:
            glued.append(t)
    toks = glued
    shape = Shape()
    n = len(toks)
    depth = 0
    for i, t in enumerate(toks):  # tables and aliases, at any depth
        if t in ("from", "join") and i + 1 < n:
            name = toks[i + 1]
            if name == "(" or name in _KEYWORDS:
                continue
            table = name.split(".")[-1].strip('"`[]')
            alias = table
            j = i + 2
            if j < n and toks[j] == "as":
                j += 1
            if j < n and _colref(toks[j]) is not None and "." not in toks[j]:
                alias = toks[j].strip('"`[]')
            shape.tables[alias] = table
            shape.tables.setdefault(table, table)
            # more tables after commas: from a x, b y
            k = j + 1 if alias != table else i + 2
            while t == "from" and k + 1 < n and toks[k] == ",":
                nm = toks[k + 1]
                if nm == "(" or nm in _KEYWORDS:
                    break
                tb = nm.split(".")[-1].strip('"`[]')
                al, k = tb, k + 2
                if k < n and toks[k] == "as":
                    k += 1
                if k < n and _colref(toks[k]) is not None and "." not in toks[k]:
                    al, k = toks[k].strip('"`[]'), k + 1
                shape.tables[al] = tb
                shape.tables.setdefault(tb, tb)
    for i, t in enumerate(toks):  # predicates
        if t not in _COMPARE or i == 0:
            continue
        left = _colref(toks[i - 1])
        rhs = toks[i + 1] if i + 1 < n else ""
        if t == "is":
            rhs_ok = True
        elif t == "in":
            rhs_ok = rhs == "(" and i + 2 < n and toks[i + 2] in ("?", "select")
        else:
            rhs_ok = rhs == "?" or rhs.startswith("$") or _colref(rhs) is not None
        if left is None or not rhs_ok:
            if left is None and toks[i - 1] == "?" and t in ("=", "<", ">", "<=", ">="):
                right = _colref(rhs)  # "? = col"
                if right is not None:
                    owner = shape.table_of(right[0], right[1])
                    if owner is not None:
                        shape.predicates.append(Predicate(owner, right[1], t, None, right[0]))
            continue
        owner = shape.table_of(left[0], left[1])
        if owner is None and left[0] is None:
            owner = "?"  # unqualified among several tables: resolved with the catalog
        if owner is None:
            continue
        join = None
        other = _colref(rhs) if t not in ("is", "in") else None
        if other is not None and other[0] is not None:
            other_table = shape.tables.get(other[0])
            if other_table is None:
                continue
            join = f"{other_table}.{other[1]}"
            # the join serves both sides: either table may be the one missing an index
            shape.predicates.append(Predicate(other_table, other[1], t, f"{owner}.{left[1]}",
                                              other[0]))
        elif other is not None:
            continue  # col = other_col unqualified: unreadable
        shape.predicates.append(Predicate(owner, left[1], t, join, left[0]))
    # order by / limit of the outermost query
    depth = 0
    order_at = -1
    for i, t in enumerate(toks):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t == "order" and i + 1 < n and toks[i + 1] == "by":
            order_at = i + 2
        elif depth == 0 and (t == "limit" or (t == "fetch" and i + 1 < n
                             and toks[i + 1] in ("first", "next"))):
            shape.limit = True
    if order_at >= 0:
        i = order_at
        while i < n and toks[i] not in _STOP_ORDER:
            ref = _colref(toks[i])
            if ref is None:
                break
            direction = "asc"
            if i + 1 < n and toks[i + 1] in ("asc", "desc"):
                direction = toks[i + 1]
                i += 1
            shape.order_by.append((ref[0], ref[1], direction))
            i += 1
            if i < n and toks[i] == ",":
                i += 1
            elif i < n and toks[i] == "nulls":
                i += 2
                if i < n and toks[i] == ",":
                    i += 1
    # select list of the outermost select
    if toks and toks[0] == "select":
        i = 1
        if i < n and toks[i] == "distinct":
            i += 1
        depth = 0
        item: list[str] = []
        while i < n:
            t = toks[i]
            if t == "(":
                depth += 1
            elif t == ")":
                depth -= 1
            if depth == 0 and t in (",", "from"):
                if len(item) == 1:
                    if item[0] == "*" or item[0].endswith(".*"):
                        shape.select_star = True
                    else:
                        ref = _colref(item[0])
                        if ref is not None:
                            shape.select_columns.append(ref)
                elif len(item) == 3 and item[1] == "as":
                    ref = _colref(item[0])
                    if ref is not None:
                        shape.select_columns.append(ref)
                item = []
                if t == "from":
                    break
            else:
                item.append(t)
            i += 1
    return shape


def resolve_unqualified(shape: Shape, columns: dict[str, set[str]]) -> None:
    """Give unqualified predicates (table ``?``) their table from the catalog's columns;
    drop those that stay ambiguous."""
    kept = []
    for p in shape.predicates:
        if p.table == "?":
            table = shape.table_of(None, p.column, columns)
            if table is None:
                continue
            p = Predicate(table, p.column, p.op, p.join, p.alias)
        kept.append(p)
    shape.predicates = kept


def to_placeholders(text: str, dialect: str) -> str:
    """The fingerprint as a statement the database can plan: operators re-glued,
    ``select ?`` (an ``exists`` subquery's constant) as ``select 1``, and each ``?`` a
    numbered ``$n`` for PostgreSQL (SQLite keeps ``?``). No value is put in."""
    out = re.sub(r"([<>!]) (?=[=>])", r"\1", text)
    out = re.sub(r": :", "::", out)
    out = re.sub(r"\| \|", "||", out)
    out = re.sub(r"\bselect \?(?= from| ,)", "select 1", out)
    if dialect == "postgresql":
        counter = iter(range(1, 1_000_000))
        out = re.sub(r"\?", lambda _m: f"${next(counter)}", out)
    return out
