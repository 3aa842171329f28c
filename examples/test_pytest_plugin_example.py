"""The pytest plugin on a SQLAlchemy model. Run:

    pytest examples/test_pytest_plugin_example.py --pulsegate-nplusone=fail

The eager version passes; the lazy one is caught (marked xfail here so the example run
stays green -- drop the xfail to see the failure message with call site, SQL and fix).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from pulsegate.queries import Capture


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    books: Mapped[list[Book]] = relationship()


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))


@pytest.fixture()
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Author(books=[Book(), Book()]) for _ in range(10)])
        s.commit()
        s.expunge_all()
        yield s


def book_counts(session: Session, eager: bool) -> list[int]:
    query = select(Author).options(selectinload(Author.books)) if eager else select(Author)
    return [len(a.books) for a in session.scalars(query)]


@pytest.mark.pulsegate(max_queries=2, nplusone="fail")
def test_book_counts_eager(session: Session, pulsegate_capture: Capture) -> None:
    assert book_counts(session, eager=True) == [2] * 10
    assert pulsegate_capture.query_count == 2  # the authors, then one IN query for books


@pytest.mark.xfail(strict=True, reason="N+1: one SELECT per author (the plugin fails it)")
@pytest.mark.pulsegate(nplusone="fail")
def test_book_counts_lazy(session: Session) -> None:
    assert book_counts(session, eager=False) == [2] * 10
