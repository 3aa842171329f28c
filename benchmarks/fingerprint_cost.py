"""Cost of one SQL fingerprint, the dialect-aware scanner against the tokenizer it
replaced (issue 18), paired in one run.

The baseline is the old ``pulsegate/queries/fingerprint.py`` read from git (``--base``,
the last commit before the scanner) and loaded as a module of its own; the current one
is imported as usual. Both fingerprint the same ordinary statements -- what SQLAlchemy
and Django emit on SQLite, PostgreSQL and MySQL, with sqlcommenter comments, IN lists,
multi-row VALUES and a few inlined literals -- the current one told each statement's
dialect, as the ORM hooks tell it. Two costs per statement:

* ``miss`` -- ``normalize`` (the work on a cache miss: scan, collapse);
* ``hit``  -- ``FingerprintCache.get`` of a cached statement (the steady state: ORM loops
  repeat the exact text), which now also looks up the dialect's rules.

Rounds alternate base and current back to back on this thread's CPU clock; reported:
the median over rounds of each round's ratio current/base (a slow spell on a shared
machine lifts both sides of a round alike), and the medians in microseconds.

    python benchmarks/fingerprint_cost.py [--rounds 30] [--base a287d67]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# ``pulsegate.queries.fingerprint`` the module (the package re-exports the function).
current = importlib.import_module("pulsegate.queries.fingerprint")

ROOT = Path(__file__).resolve().parents[1]
clock = time.thread_time

# (dialect, statement): ordinary ORM output, nothing adversarial.
STATEMENTS: list[tuple[str, str]] = [
    ("sqlite", "SELECT author.id, author.name FROM author"),
    ("sqlite", "SELECT book.id AS book_id, book.title AS book_title, book.author_id AS "
               "book_author_id FROM book WHERE ? = book.author_id"),
    ("sqlite", "SELECT book.id, book.title FROM book WHERE book.author_id IN "
               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
    ("sqlite", "INSERT INTO tag (name) VALUES (?) RETURNING id"),
    ("sqlite", "UPDATE book SET title=? WHERE book.id = ?"),
    ("sqlite", 'SELECT "app_book"."id", "app_book"."title", "app_book"."author_id" FROM '
               '"app_book" WHERE "app_book"."author_id" = %s'),
    ("sqlite", 'INSERT INTO "app_review" ("book_id", "stars", "body") VALUES (%s, %s, %s), '
               '(%s, %s, %s), (%s, %s, %s)'),
    ("sqlite", 'SELECT COUNT(*) AS "__count" FROM "app_book" WHERE "app_book"."author_id" = %s'),
    ("postgresql", 'SELECT "app_author"."id", "app_author"."name" FROM "app_author" ORDER BY '
                   '"app_author"."name" ASC LIMIT 21'),
    ("postgresql", "SELECT users.id, users.email FROM users WHERE users.id = %(pk_1)s::INTEGER"),
    ("postgresql", "SELECT orders.id, orders.total FROM orders WHERE orders.status = 'paid' "
                   "AND orders.created_at > now() - interval '1 day' /*traceparent='00-4bf92f"
                   "3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',route='%2Forders'*/"),
    ("postgresql", "UPDATE accounts SET balance=(accounts.balance + %(balance_1)s) WHERE "
                   "accounts.id = %(id_1)s RETURNING accounts.balance"),
    ("postgresql", "SELECT t.id FROM t WHERE t.tags @> ARRAY[%(p1)s]::varchar[] AND t.n = 42"),
    ("mysql", "SELECT `app_book`.`id`, `app_book`.`title` FROM `app_book` WHERE "
              "`app_book`.`author_id` = %s"),
    ("mysql", "INSERT INTO `app_tag` (`name`) VALUES (%s)"),
    ("mysql", "SELECT product.id, product.sku FROM product WHERE product.sku IN "
              "(%s, %s, %s, %s) AND product.active = 1"),
]


def load_base(ref: str) -> ModuleType:
    """The fingerprint module as of ``ref``, loaded under a name of its own."""
    source = subprocess.run(["git", "show", f"{ref}:src/pulsegate/queries/fingerprint.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "fingerprint_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fingerprint_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fingerprint_base"] = module
    spec.loader.exec_module(module)
    return module


def per_statement(fn: Callable[[], Any], loops: int) -> float:
    t0 = clock()
    for _ in range(loops):
        fn()
    return (clock() - t0) / loops / len(STATEMENTS) * 1e6


def measure(base: ModuleType, rounds: int, loops: int) -> dict[str, list[float]]:
    sqls = [s for _, s in STATEMENTS]
    base_cache, cache = base.FingerprintCache(4096), current.FingerprintCache(4096)
    for d, s in STATEMENTS:  # warm both caches
        base_cache.get(s)
        cache.get(s, d)

    def base_miss() -> None:
        for s in sqls:
            base.normalize(s)

    def miss() -> None:
        for d, s in STATEMENTS:
            current.normalize(s, d)

    def base_hit() -> None:
        get = base_cache.get
        for s in sqls:
            get(s)

    def hit() -> None:
        get = cache.get
        for d, s in STATEMENTS:
            get(s, d)

    out: dict[str, list[float]] = {k: [] for k in ("base miss", "miss", "base hit", "hit")}
    for r in range(rounds):
        # alternate which side goes first, so neither always runs on a warmer cache
        pairs = [("base miss", base_miss), ("miss", miss)]
        pairs += [("base hit", base_hit), ("hit", hit)]
        if r % 2:
            pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
        for name, fn in pairs:
            out[name].append(per_statement(fn, loops * (20 if "hit" in name else 1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--loops", type=int, default=50, help="passes over the statements per round")
    ap.add_argument("--base", default="a287d67", help="git ref of the old tokenizer")
    args = ap.parse_args()
    base = load_base(args.base)
    res = measure(base, args.rounds, args.loops)
    print(f"fingerprint cost per ordinary statement ({len(STATEMENTS)} statements, "
          f"{args.rounds} paired rounds, base {args.base})")
    for kind in ("miss", "hit"):
        b, c = res[f"base {kind}"], res[kind]
        ratio = statistics.median(x / y for x, y in zip(c, b, strict=True))
        print(f"  {kind:5} base {statistics.median(b):6.2f} us   scanner {statistics.median(c):6.2f} us"
              f"   ratio scanner/base {ratio:.2f}")


if __name__ == "__main__":
    main()
