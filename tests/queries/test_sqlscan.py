"""The fingerprint scanner: what each dialect's literals turn into, the leak shapes of
issue 18 (each leaked through the old single-regex tokenizer), and linear time on the
shapes that made that tokenizer quadratic."""

from __future__ import annotations

import gc
import time

import pytest

from pulsegate.queries.fingerprint import FingerprintCache, normalize
from pulsegate.queries.sqlscan import DIALECTS, MAX_SCAN, rules_for, scan

ALL = [None, "postgresql", "mysql", "sqlite", "mssql", "oracle"]

# (dialects where the statement is valid SQL, statement, planted secret) -- the shapes
# the issue's probes got through: every one printed the secret in the old fingerprint.
LEAKS = [
    (["postgresql", None], "SELECT $$SECRET1 is here$$ FROM t", "secret1"),
    (["postgresql", None], "SELECT $tag$SECRET2 'x'$tag$ FROM t", "secret2"),
    (["postgresql", None], "SELECT ARRAY['SECRET3'] FROM t", "secret3"),
    (["postgresql", "mssql", None], "SELECT 1 /* a /* b */ SECRET4 */ FROM t", "secret4"),
    (["mysql", None], "SELECT a FROM t # SECRET5 and more\nWHERE b = 1", "secret5"),
    # A literal ending in a backslash: standard strings end there, MySQL's (and
    # PostgreSQL's with standard_conforming_strings off) go on.
    (ALL, "SELECT a FROM t WHERE b = 'C:\\' AND c = 'SECRET6'", "secret6"),
    # ... and the reverse: a literal only backslash rules close later (old code was right).
    (["postgresql", "mysql", None], "SELECT a FROM t WHERE b = 'x\\' OR SECRET7 = 1 -- '", "secret7"),
    (["mysql", "sqlite", None], 'SELECT a FROM t WHERE b = "SECRET8"', "secret8"),
    (["postgresql", None], "SELECT a FROM t WHERE b = E'it\\'s SECRET9'", "secret9"),
    (["mysql", None], 'SELECT a FROM t WHERE b = "say \\"SECRET10\\" now"', "secret10"),
    (["oracle", None], "SELECT a FROM t WHERE b = q'[it's SECRET11]'", "secret11"),
]


@pytest.mark.parametrize(("dialects", "sql", "secret"), LEAKS)
def test_the_issues_leak_shapes_redact_in_their_dialect_and_without_one(
        dialects: list[str | None], sql: str, secret: str) -> None:
    for dialect in dialects:
        text, _ = normalize(sql, dialect)
        assert secret not in text.lower(), (dialect, text)
        assert text.startswith("select "), (dialect, text)


def test_ordinary_statements_keep_their_shape_in_every_dialect() -> None:
    for dialect in ALL:
        assert normalize("SELECT a, b FROM t WHERE id = 5 AND name = 'x' -- c", dialect)[0] == \
            "select a, b from t where id = ? and name = ?"
        assert normalize("SELECT a FROM t WHERE id IN (%s, %s) /* x='y' */", dialect)[0] == \
            "select a from t where id in (?)"


@pytest.mark.parametrize(("dialect", "sql", "text"), [
    ("postgresql", 'SELECT "t"."a" FROM "t" WHERE "t"."b" = $1::text',
     'select "t"."a" from "t" where "t"."b" = ?::text'),
    ("postgresql", "SELECT a[1], ARRAY['x'] FROM t", "select a[?], array[?] from t"),
    ("postgresql", "SELECT $fn$ body $fn$, U&'d\\0061t', B'101', X'ff'", "select ?, ?, ?, ?"),
    ("postgresql", "SELECT a # b FROM t", "select a # b from t"),
    ("mysql", "SELECT `a` FROM `t` WHERE b = \"x\" AND c = 'it\\\\s'",
     "select `a` from `t` where b = ? and c = ?"),
    ("mysql", "SELECT a--1\nFROM t", "select a - - ? from t"),
    ("sqlite", 'INSERT INTO "t" ("a", "b") VALUES (?, "lit")', 'insert into "t" ("a", "b") values (?, ?)'),
    ("sqlite", 'UPDATE "t" SET "a" = "lit", "b" = ? WHERE "t"."id" = ?',
     'update "t" set "a" = ?, "b" = ? where "t"."id" = ?'),
    ("sqlite", 'SELECT COUNT(*) AS "n" FROM [my table] WHERE "x" = "y"',
     'select count(*) as "n" from [my table] where ? = ?'),
    ("mssql", "SELECT [a b].[c] FROM #tmp WHERE d = N'x' /* /* */ */",
     "select [a b].[c] from # tmp where d = ?"),
    ("oracle", "SELECT v$session.a FROM dual WHERE b = q'{x}' AND c = :1",
     "select v$session.a from dual where b = ? and c = ?"),
])
def test_each_dialects_quoting(dialect: str, sql: str, text: str) -> None:
    assert normalize(sql, dialect)[0] == text


def test_dialect_names_the_orms_report_map_to_their_rules() -> None:
    assert rules_for("postgresql") is DIALECTS["postgresql"] is rules_for("PostgreSQL")
    assert rules_for("microsoft") is rules_for("mssql")  # Django's mssql-django vendor
    assert rules_for("mariadb") is rules_for("mysql")
    assert rules_for(None).name == rules_for("snowflake").name == "generic"


def test_unclassifiable_characters_never_pass_through() -> None:
    for dialect in ALL:
        text, _ = normalize("SELECT a \\ b € c FROM t \x00 d", dialect)
        assert "\\" not in text and "€" not in text and "\x00" not in text, (dialect, text)


def test_undecidable_shapes_fold_the_rest_into_one_marker() -> None:
    # Unknown dialect: a dollar quote, a bracket of unknown meaning, "#", "--x".
    for sql in ("SELECT $$a$$, secret FROM t", "SELECT a['x'], secret FROM t",
                "SELECT a # x\n, secret FROM t", "SELECT 1--x\n, secret FROM t",
                "SELECT 1 /* a /* b */ secret */ FROM t", "SELECT 'a\\' , secret FROM t",
                "SELECT 1 -- x\r, secret\n FROM t"):
        text, _ = normalize(sql)
        assert "secret" not in text and text.endswith("?"), (sql, text)
    # Unterminated literals and identifiers run to the end.
    for dialect in ALL:
        for sql in ("SELECT 'secret", 'SELECT "secret', "SELECT `secret") + (
                ("SELECT [se cret",) if dialect in (None, "sqlite", "mssql") else ()):
            assert "secret" not in normalize(sql, dialect)[0].replace(" ", ""), (dialect, sql)


def test_the_same_text_is_cached_per_dialect() -> None:
    cache = FingerprintCache(8)
    pg = cache.get('SELECT "secret" FROM t', "postgresql")
    mysql = cache.get('SELECT "secret" FROM t', "mysql")
    assert pg.text == 'select "secret" from t' and mysql.text == "select ? from t"
    assert cache.get('SELECT "secret" FROM t', "mysql") is mysql and cache.hits == 1


def test_long_statements_are_scanned_up_to_the_cap_and_stay_one_shape() -> None:
    long_in = [normalize(f"SELECT a FROM t WHERE id IN ({', '.join(['%s'] * k)})", "postgresql")
               for k in (3000, 5000)]
    assert long_in[0] == long_in[1] == ("select a from t where id in (?, ...", False)
    tail = normalize("SELECT a FROM t WHERE b = 1" + " AND c = 'x'" * 2000, "sqlite")[0]
    assert tail.endswith(" ...") and len(tail) < MAX_SCAN


# --- linear time ------------------------------------------------------------------------

# Runs of one unit: "[" with no "]" and a quote-escaped literal ending in a backslash
# are the issue's two quadratic shapes; the others poke every hand-written branch.
SHAPES = ["[", "'a\\", "'\\", "\\", "'", '"', "`", "$", "$a$", "/*", "/*/", "--x\n", "#", "e'\\", "'a' ",
          "(?, ", "[a", "q'", "in (?, ?, ?"]


def _cpu(fn: object, *args: object, repeat: int = 3) -> float:
    """Best of ``repeat`` runs in this thread's CPU time (other processes do not count;
    the collector is paused so its passes do not land in one size only)."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            t = time.thread_time()
            fn(*args)  # type: ignore[operator]
            best = min(best, time.thread_time() - t)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("unit", SHAPES)
def test_doubling_the_statement_doubles_the_time_below_the_cap(unit: str) -> None:
    """4 KiB -> 8 KiB (both fully scanned): linear time doubles, quadratic quadruples.
    The old tokenizer took 0.1 s -> 0.4 s on "[" here, and 6 s on 32 KiB."""
    small, big = (unit * (k // len(unit)) for k in (MAX_SCAN // 2, MAX_SCAN))
    for dialect in ALL:
        ts = _cpu(normalize, small, dialect)
        tb = _cpu(normalize, big, dialect)
        assert tb < 3 * ts + 0.004, (unit, dialect, ts, tb)


@pytest.mark.parametrize("unit", SHAPES)
def test_the_scanner_itself_is_linear_beyond_the_cap(unit: str) -> None:
    small, big = (unit * (k // len(unit)) for k in (1 << 14, 1 << 15))
    for dialect in (None, "postgresql", "mysql", "sqlite"):  # mssql, oracle: no own paths
        rules = rules_for(dialect)
        ts = _cpu(scan, small, rules, None)
        tb = _cpu(scan, big, rules, None)
        assert tb < 3 * ts + 0.01, (unit, dialect, ts, tb)


@pytest.mark.parametrize("unit", SHAPES)
def test_a_megabyte_costs_what_the_cap_costs(unit: str) -> None:
    """512 KiB and 1 MiB cost alike (only the first MAX_SCAN characters are read), and
    well under a hard bound."""
    half, full = (unit * (k // len(unit)) for k in (1 << 19, 1 << 20))
    for dialect in ALL:
        th = _cpu(normalize, half, dialect)
        tf = _cpu(normalize, full, dialect)
        assert tf < 2 * th + 0.01 and tf < 0.5, (unit, dialect, th, tf)


def test_the_cache_bound_holds_across_dialects() -> None:
    cache = FingerprintCache(maxsize=3)
    for i in range(4):
        for dialect in ("postgresql", "mysql", None):
            cache.get(f"select {i} from t{i}", dialect)
    assert len(cache) == 3 and cache.misses == 12
    cache.resize(1)
    assert len(cache) == 1
    assert cache.get("select 3 from t3", None).text == "select ? from t3"


def test_the_cap_cuts_between_tokens() -> None:
    ids = ", ".join(f"%(primary_keys_{i})s::INTEGER" for i in range(500))
    text = normalize(f"SELECT b.id FROM b WHERE b.a IN ({ids})", "postgresql")[0]
    assert text.endswith("?::integer, ...") and "primary" not in text and "% (" not in text


def test_the_docstring_examples_hold() -> None:
    import doctest
    import importlib

    for name in ("pulsegate.queries.sqlscan", "pulsegate.queries.fingerprint"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0 and result.attempted >= 1, name
