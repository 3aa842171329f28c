"""capture() on a SQLAlchemy N+1: run `python examples/capture_example.py`."""

from __future__ import annotations

from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from pulsegate import capture


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


engine = create_engine("sqlite://")
Base.metadata.create_all(engine)
with Session(engine) as s:
    s.add_all([Author(books=[Book(), Book()]) for _ in range(10)])
    s.commit()
    with capture() as cap:
        for author in s.scalars(select(Author)):
            len(author.books)  # one SELECT per author
    print(cap.report())
