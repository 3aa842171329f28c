"""Cost of the Django ``wide_select`` sampling (pulsegate.django.columns): per field read
and per row loaded, outside a window and inside one.

A 23-column model (in-memory SQLite), 200 rows loaded per page inside ``capture()``,
then every row's ``title`` read ``--reads`` times. Three states: ``plain`` (never
sampled), ``after`` (a window opened and closed: the descriptors are Django's again) and
``window`` (sampling). Reported: bytecodes per field read and per row loaded (counted
under the opcode tracer: deterministic on a loaded machine), then ns per field read and
µs per row loaded (thread CPU clock, best of ``--rounds``; noisy on a shared machine).

    python benchmarks/column_reads.py [--reads 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import count_bytecodes


def setup() -> tuple[Any, Any]:
    import django
    from django.conf import settings

    settings.configure(DEBUG=False, SECRET_KEY="bench", INSTALLED_APPS=["pulsegate.django"],
                       DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                              "NAME": ":memory:"}})
    django.setup()
    from django.db import connection, models

    notes: dict[str, Any] = {f"note{i}": models.TextField() for i in range(19)}

    class Meta:
        app_label = "pulsegate"
        db_table = "bench_novel"

    novel: Any = type("Novel", (models.Model,), {
        "__module__": __name__, "Meta": Meta, "title": models.CharField(max_length=80),
        "year": models.IntegerField(), "body": models.TextField(), **notes})
    with connection.schema_editor() as editor:
        editor.create_model(novel)
    novel.objects.bulk_create(novel(title=f"t{i}", year=i, body="b" * 500,
                                    **{n: "n" * 80 for n in notes}) for i in range(200))
    from pulsegate.advisor.columns import ColumnReads
    from pulsegate.django.columns import DjangoColumns
    from pulsegate.django.instrument import install

    install()
    reads = ColumnReads(DjangoColumns(), window=1e9, every=1e9, min_rows=1)
    reads.want("bench_novel")
    return novel, reads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=50, help="reads of one field per row")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    novel, reads = setup()
    from pulsegate import capture

    def load() -> list[Any]:
        with capture(unused_eager_loads=False):
            return list(novel.objects.all())

    def read(rows: list[Any], k: int) -> None:
        for obj in rows:
            for _ in range(k):
                obj.title  # noqa: B018 (the read is what is measured)

    def measure(state: str) -> tuple[float, float, float, float]:
        rows = load()
        n_rows, k = len(rows), args.reads
        bc_read = (sum(count_bytecodes(lambda _n: read(rows, k), 0).values())
                   - sum(count_bytecodes(lambda _n: read(rows, 0), 0).values())) / (n_rows * k)
        bc_row = sum(count_bytecodes(lambda _n: load(), 0).values()) / n_rows
        t_read, t_row = float("inf"), float("inf")
        for _ in range(args.rounds):
            t0 = time.thread_time_ns()
            read(rows, k)
            t1 = time.thread_time_ns()
            read(rows, 0)
            t2 = time.thread_time_ns()
            t_read = min(t_read, ((t1 - t0) - (t2 - t1)) / (n_rows * k))
            t0 = time.thread_time_ns()
            load()
            t_row = min(t_row, (time.thread_time_ns() - t0) / n_rows / 1000)
        return bc_read, bc_row, t_read, t_row

    out = {"plain": measure("plain")}
    reads.tick(0.0)  # a window opens (1e9 s long: closed by hand below)
    out["window"] = measure("window")
    reads.close()
    out["after"] = measure("after")
    print(f"Django {novel.__name__}: 23 columns, 200 rows per page, title read {args.reads}x per row")
    print(f"{'state':<8} {'bytecodes/read':>15} {'bytecodes/row':>14} {'ns/read':>8} {'us/row':>7}")
    for name in ("plain", "after", "window"):
        bc_read, bc_row, t_read, t_row = out[name]
        print(f"{name:<8} {bc_read:>15.1f} {bc_row:>14.1f} {t_read:>8.0f} {t_row:>7.1f}")
    seen = reads.seen("bench_novel", next(iter(reads.by_fingerprint))[1]) \
        if reads.by_fingerprint else None
    print("window evidence:", None if seen is None else (sorted(seen.read), seen.rows))


if __name__ == "__main__":
    main()
