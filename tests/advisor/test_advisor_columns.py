"""wide_select made precise: which columns of a wide SQLAlchemy-mapped table the code
reads, sampled in windows (real SQLite, real SQLAlchemy sessions and attribute reads)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, String, Table, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.orm.attributes import InstrumentedAttribute

from column_windows import churn
from pulsegate.advisor.columns import ColumnReads
from pulsegate.advisor.orm import SQLAlchemyColumns
from pulsegate.advisor.query_advisor import QueryAdvisor
from pulsegate.queries.events import QueryEvent

EXTRA = [f"c{i}" for i in range(12)]


class Base(DeclarativeBase):
    pass


#: 15 columns: wide (the advisor's threshold is 12)
LISTING = Table("listing", Base.metadata, Column("id", Integer, primary_key=True),
                Column("name", String), Column("price", Integer),
                *(Column(c, String) for c in EXTRA))


class Listing(Base):
    __table__ = LISTING


def shop(tmp_path: Path) -> tuple[Any, str, Any]:
    path = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(Listing(id=i, name=f"n{i}", price=i, **{c: "x" * 40 for c in EXTRA})
                  for i in range(2000))
        s.commit()
    sql = str(select(Listing).where(LISTING.c.price > 10).limit(50).compile(engine))
    return engine, sql, lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def advisor(connect: Any, sql: str, reads: ColumnReads) -> QueryAdvisor:
    adv = QueryAdvisor(connect, "sqlite", columns=reads)
    adv.offer("GET /listings", [QueryEvent(sql=sql, duration_ms=5.0, db="sqlite")])
    return adv


def wide(adv: QueryAdvisor, now: float) -> list[Any]:
    return [f for f in adv.run(now) if f.kind == "wide_select"]


def page(engine: Any, read: list[str]) -> list[tuple[Any, ...]]:
    with Session(engine) as s:
        return [tuple(getattr(row, c) for c in read)
                for row in s.scalars(select(Listing).where(LISTING.c.price > 10).limit(50))]


def test_the_columns_read_in_windows_make_the_advice_precise(tmp_path: Path) -> None:
    engine, sql, connect = shop(tmp_path)
    reads = ColumnReads(SQLAlchemyColumns(), window=2.0, every=60.0, min_rows=20)
    adv = advisor(connect, sql, reads)
    (generic,) = wide(adv, 0.0)
    assert generic.confidence == 0.4 and "load_only" in generic.fix  # not yet sampled
    page(engine, ["c3"])  # outside a window: not seen, no cost
    assert type(Listing.__mapper__.class_manager["c3"]) is InstrumentedAttribute
    reads.tick(1.0)  # a window opens
    assert type(Listing.__mapper__.class_manager["c3"]) is not InstrumentedAttribute
    assert page(engine, ["name", "price"])[0] == ("n11", 11)
    reads.tick(3.5)  # ... and closes: the attributes are plain again
    assert all(type(Listing.__mapper__.class_manager[k]) is InstrumentedAttribute
               for k in ("id", "name", "price", *EXTRA))
    (precise,) = wide(adv, 4.0)
    assert precise.fix == "SQLAlchemy: .options(load_only(Listing.name, Listing.price))"
    assert precise.columns == ["name", "price"] and precise.confidence == 0.6
    assert "over 50 rows read in 1 windows" in precise.evidence
    assert "2 of its 15 columns" in precise.evidence
    # a later window sees another code path read more: the union is advised
    reads.tick(61.0)
    page(engine, ["name", "c7"])
    reads.tick(63.5)
    (union,) = wide(adv, 64.0)
    assert union.columns == ["name", "price", "c7"]


def test_no_advice_when_the_code_reads_every_column(tmp_path: Path) -> None:
    engine, sql, connect = shop(tmp_path)
    reads = ColumnReads(SQLAlchemyColumns(), window=2.0, every=60.0, min_rows=20)
    adv = advisor(connect, sql, reads)
    assert len(wide(adv, 0.0)) == 1
    reads.tick(1.0)
    page(engine, ["id", "name", "price", *EXTRA])
    reads.tick(3.5)
    assert wide(adv, 4.0) == []


def test_too_few_rows_in_the_windows_keep_the_generic_advice(tmp_path: Path) -> None:
    engine, sql, connect = shop(tmp_path)
    reads = ColumnReads(SQLAlchemyColumns(), window=2.0, every=60.0, min_rows=100)
    adv = advisor(connect, sql, reads)
    wide(adv, 0.0)
    reads.tick(1.0)
    page(engine, ["name"])  # 50 rows < 100
    reads.tick(3.5)
    (generic,) = wide(adv, 4.0)
    assert generic.confidence == 0.4 and generic.columns == []


def test_windows_open_and_close_while_other_threads_read_rows(tmp_path: Path) -> None:
    engine, sql, connect = shop(tmp_path)
    reads = ColumnReads(SQLAlchemyColumns(), window=0.01, every=0.02, min_rows=20)
    reads.want("listing")

    def one() -> None:
        assert page(engine, ["name", "c1"])[0] == ("n11", "x" * 40)

    assert churn(reads, one) == []  # 100 windows opened and closed under the readers' feet
    seen = reads.seen("listing")
    assert seen is not None and seen.read <= {"name", "c1"} and seen.windows >= 50
    assert all(type(Listing.__mapper__.class_manager[k]) is InstrumentedAttribute
               for k in ("id", "name", "price", *EXTRA))
