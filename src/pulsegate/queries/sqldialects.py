"""The quoting rules of each family of databases, for the SQL scanner
(:mod:`pulsegate.queries.sqlscan`): which quotes delimit strings and identifiers, how
comments and backslashes behave, and the ORM dialect names that select them."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DIALECTS", "GENERIC", "DialectRules", "rules_for"]


class DialectRules(NamedTuple):
    """How one family of databases quotes. ``backslash``: ``True`` backslash escapes in
    ``'…'``, ``False`` none, ``None`` depends on a server setting (fold on disagreement).
    ``dq``: ``"identifier"``, ``"string"`` or ``"context"`` (identifier where one is
    expected, else a string). ``brackets``: ``"identifier"``, ``"operator"`` or
    ``"either"``. ``hash``: ``"comment"``, ``"operator"``, ``"other"`` or ``"either"``.
    ``nested``: block comments nest. ``dollar``: ``"quote"``, ``"param"`` or
    ``"either"``. ``dash_space``: ``--`` needs white space after it (MySQL); ``None``
    unknown. ``backtick``: backticks quote identifiers. ``qquote``: Oracle ``q'[…]'``
    (``None``: unknown)."""

    name: str
    backslash: bool | None
    dq: str
    brackets: str
    hash: str
    nested: bool
    dollar: str
    dash_space: bool | None
    backtick: bool
    qquote: bool | None


POSTGRESQL = DialectRules("postgresql", None, "identifier", "operator", "operator", True,
                          "quote", False, False, False)
MYSQL = DialectRules("mysql", None, "string", "operator", "comment", False, "param", True,
                     True, False)
SQLITE = DialectRules("sqlite", False, "context", "identifier", "other", False, "param",
                      False, True, False)
MSSQL = DialectRules("mssql", False, "identifier", "identifier", "operator", True, "param",
                     False, False, False)
ORACLE = DialectRules("oracle", False, "identifier", "operator", "operator", False, "param",
                      False, False, True)
GENERIC = DialectRules("generic", None, "context", "either", "either", False, "either", None,
                       True, None)

#: ORM dialect / vendor names -> rules; any other name (or None) gets ``GENERIC``.
DIALECTS: dict[str, DialectRules] = {
    "postgresql": POSTGRESQL, "postgres": POSTGRESQL, "cockroachdb": POSTGRESQL,
    "mysql": MYSQL, "mariadb": MYSQL, "sqlite": SQLITE, "mssql": MSSQL, "microsoft": MSSQL,
    "oracle": ORACLE,
}


def rules_for(dialect: str | None) -> DialectRules:
    """The quoting rules for an ORM's dialect name; unknown names get the generic ones."""
    if dialect is None:
        return GENERIC
    found = DIALECTS.get(dialect)
    if found is None and isinstance(dialect, str):
        found = DIALECTS.get(dialect.lower())
    return found if found is not None else GENERIC
