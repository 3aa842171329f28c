"""SQLAlchemy 2.x scenario corpus: (name, is_problem, expected kind, run(session))."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    contains_eager,
    defer,
    joinedload,
    load_only,
    mapped_column,
    relationship,
    selectinload,
    subqueryload,
)


class Base(AsyncAttrs, DeclarativeBase):
    pass


book_tag = Table("sa_book_tag", Base.metadata, Column("book_id", ForeignKey("sa_book.id"), primary_key=True),
                 Column("tag_id", ForeignKey("sa_tag.id"), primary_key=True))


class Author(Base):
    __tablename__ = "sa_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author")
    profile: Mapped[Profile] = relationship(back_populates="author", uselist=False)


class Profile(Base):
    __tablename__ = "sa_profile"
    id: Mapped[int] = mapped_column(primary_key=True)
    bio: Mapped[str] = mapped_column(String(50))
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_author.id"))
    author: Mapped[Author] = relationship(back_populates="profile")


class Book(Base):
    __tablename__ = "sa_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    summary: Mapped[str] = mapped_column(String(200), default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_author.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book")
    tags: Mapped[list[Tag]] = relationship(secondary=book_tag, back_populates="books")


class Review(Base):
    __tablename__ = "sa_review"
    id: Mapped[int] = mapped_column(primary_key=True)
    stars: Mapped[int] = mapped_column(Integer)
    book_id: Mapped[int] = mapped_column(ForeignKey("sa_book.id"))
    book: Mapped[Book] = relationship(back_populates="reviews")


class Tag(Base):
    __tablename__ = "sa_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(secondary=book_tag, back_populates="tags")


class Setting(Base):
    __tablename__ = "sa_setting"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))


def seed(session: Session) -> None:
    tags = [Tag(name=f"t{i}") for i in range(6)]
    for a in range(10):
        author = Author(name=f"a{a}", profile=Profile(bio=f"bio{a}"))
        for b in range(3):
            book = Book(title=f"b{a}{b}", summary="s" * 20, tags=[tags[(a + b) % 6], tags[(a + b + 1) % 6]],
                        reviews=[Review(stars=s) for s in (3, 5)])
            author.books.append(book)
        session.add(author)
    session.add(Setting(key="site"))
    session.commit()


def serialize(book: Book) -> dict[str, Any]:  # a serializer-style helper
    return {"title": book.title, "author": book.author.name}


Scenario = tuple[str, bool, str | None, Callable[[Session], object]]

PROBLEMS: list[Scenario] = [
    ("lazy one-to-many", True, "n_plus_one",
     lambda s: [len(a.books) for a in s.scalars(select(Author))]),
    ("many-to-one", True, "n_plus_one", lambda s: [b.author.name for b in s.scalars(select(Book))]),
    ("one-to-one reverse (uselist=False)", True, "n_plus_one",
     lambda s: [a.profile.bio for a in s.scalars(select(Author))]),
    ("one-to-one forward", True, "n_plus_one", lambda s: [p.author.name for p in s.scalars(select(Profile))]),
    ("many-to-many", True, "n_plus_one", lambda s: [len(b.tags) for b in s.scalars(select(Book))]),
    ("many-to-many reverse", True, "n_plus_one", lambda s: [len(t.books) for t in s.scalars(select(Tag))]),
    ("nested two levels", True, "n_plus_one",
     lambda s: [len(b.reviews) for a in s.scalars(select(Author)) for b in a.books]),
    ("second level after eager first", True, "n_plus_one",
     lambda s: [len(b.reviews) for a in s.scalars(select(Author).options(selectinload(Author.books)))
                for b in a.books]),
    ("session.get in a loop", True, "n_plus_one", lambda s: [s.get(Author, i) for i in range(1, 11)]),
    ("count in a loop", True, "n_plus_one",
     lambda s: [s.scalar(select(func.count()).select_from(Book).where(Book.author_id == a.id))
                for a in s.scalars(select(Author)).all()]),
    ("manual select per item", True, "n_plus_one",
     lambda s: [s.scalars(select(Book).where(Book.author_id == a.id)).all()
                for a in s.scalars(select(Author)).all()]),
    ("deferred column", True, "n_plus_one",
     lambda s: [b.summary for b in s.scalars(select(Book).options(defer(Book.summary)))]),
    ("load_only then access", True, "n_plus_one",
     lambda s: [b.title for b in s.scalars(select(Book).options(load_only(Book.id)))]),
    ("serializer helper", True, "n_plus_one", lambda s: [serialize(b) for b in s.scalars(select(Book))]),
    ("add + flush in a loop", True, "write_loop",
     lambda s: [(s.add(Tag(name=f"n{i}")), s.flush()) for i in range(8)]),
    ("insert statement in a loop", True, "write_loop",
     lambda s: [s.execute(insert(Tag).values(name=f"x{i}")) for i in range(8)]),
    ("update statement in a loop", True, "write_loop",
     lambda s: [s.execute(update(Book).where(Book.id == i).values(title="t")) for i in range(1, 9)]),
    ("delete statement in a loop", True, "write_loop",
     lambda s: [s.execute(delete(Review).where(Review.id == i)) for i in range(1, 9)]),
    ("repeated identical query", True, "repeated_query",
     lambda s: [s.scalars(select(Setting).where(Setting.key == "site")).first() for _ in range(8)]),
    ("session.merge in a loop", True, "n_plus_one",
     lambda s: [s.merge(Author(id=i, name=f"m{i}")) for i in range(1, 9)]),
    ("refresh in a loop", True, "n_plus_one",
     lambda s: [s.refresh(a) for a in s.scalars(select(Author)).all()]),
    ("commit inside the loop (expired rows reload)", True, "write_loop",
     lambda s: [(setattr(b, "title", "q"), s.commit()) for b in s.scalars(select(Book)).all()[:8]]),
    ("filter + first per item", True, "n_plus_one",
     lambda s: [s.scalars(select(Book).where(Book.title == f"b{i}0")).first() for i in range(10)]),
    ("delete + flush per object", True, "write_loop",
     lambda s: [(s.delete(r), s.flush()) for r in s.scalars(select(Review)).all()[:10]]),
    ("loop of exactly the threshold", True, "n_plus_one",
     lambda s: [len(a.books) for a in s.scalars(select(Author).limit(5))]),
    ("exists check per item", True, "n_plus_one",
     lambda s: [s.scalar(select(Review.id).where(Review.book_id == b.id).limit(1))
                for b in s.scalars(select(Book)).all()]),
    # Under the old repeat-count rule (>= 5) these were misses; the structural rule sees
    # any loop over a multi-row result (issue 17).
    ("loop of four", True, "n_plus_one",
     lambda s: [len(a.books) for a in s.scalars(select(Author).limit(4))]),
    ("two-object fixture", True, "n_plus_one",
     lambda s: [b.author.name for b in s.scalars(select(Book).where(Book.id.in_([1, 4])))]),
    ("single loads in a loop, then a relationship", True, "single_load_loop",
     lambda s: [len(s.scalars(select(Author).where(Author.id == i)).one().books) for i in (1, 2, 3)]),
]

def _singles_on_separate_lines(s: Session) -> None:
    first = s.get(Author, 1)
    second = s.get(Author, 2)
    assert first is not None and second is not None
    _ = len(first.books)
    _ = len(second.books)


FINE: list[Scenario] = [
    ("selectinload", False, None,
     lambda s: [len(a.books) for a in s.scalars(select(Author).options(selectinload(Author.books)))]),
    ("joinedload", False, None,
     lambda s: [b.author.name for b in s.scalars(select(Book).options(joinedload(Book.author)))]),
    ("subqueryload", False, None,
     lambda s: [len(a.books) for a in s.scalars(select(Author).options(subqueryload(Author.books)))]),
    ("nested selectinload", False, None,
     lambda s: [len(b.reviews) for a in s.scalars(select(Author).options(
         selectinload(Author.books).selectinload(Book.reviews))) for b in a.books]),
    ("selectinload many-to-many", False, None,
     lambda s: [len(b.tags) for b in s.scalars(select(Book).options(selectinload(Book.tags)))]),
    ("add_all then one commit", False, None,
     lambda s: (s.add_all([Tag(name=f"bulk{i}") for i in range(20)]), s.commit())),
    ("multi-row insert", False, None,
     lambda s: s.execute(insert(Tag).values([{"name": f"m{i}"} for i in range(20)]))),
    ("executemany insert", False, None,
     lambda s: s.execute(insert(Tag), [{"name": f"e{i}"} for i in range(20)])),
    ("IN query instead of get loop", False, None,
     lambda s: s.scalars(select(Author).where(Author.id.in_(list(range(1, 11))))).all()),
    ("small loop under threshold", False, None, lambda s: [s.get(Author, i) for i in range(1, 4)]),
    ("pagination count + page", False, None,
     lambda s: (s.scalar(select(func.count()).select_from(Book)),
                s.scalars(select(Book).order_by(Book.id).limit(10).offset(10)).all())),
    ("group-by count", False, None,
     lambda s: s.execute(select(Book.author_id, func.count()).group_by(Book.author_id)).all()),
    ("get from identity map", False, None,
     lambda s: (s.scalars(select(Author)).all(), [s.get(Author, i) for i in range(1, 11)])),
    ("a dashboard of distinct queries", False, None,
     lambda s: (s.scalar(select(func.count()).select_from(Author)),
                s.scalar(select(func.count()).select_from(Book)),
                s.scalar(select(func.max(Review.stars))), s.scalars(select(Tag)).all(),
                s.scalars(select(Setting)).all())),
    ("same query from different places", False, None,
     lambda s: (s.scalars(select(Author).where(Author.id == 1)).all(),
                s.scalars(select(Author).where(Author.id == 2)).all(),
                s.scalars(select(Author).where(Author.id == 3)).all(),
                s.scalars(select(Author).where(Author.id == 4)).all(),
                s.scalars(select(Author).where(Author.id == 5)).all())),
    ("bulk update by primary key", False, None,
     lambda s: s.execute(update(Book), [{"id": i, "title": "z"} for i in range(1, 20)])),
    ("contains_eager", False, None,
     lambda s: [len(a.books) for a in s.scalars(select(Author).join(Author.books).options(
         contains_eager(Author.books))).unique()]),
    ("yield_per", False, None,
     lambda s: [b.title for b in s.scalars(select(Book).execution_options(yield_per=5))]),
    ("correlated count subquery", False, None,
     lambda s: s.execute(select(Author.id, select(func.count(Book.id)).where(
         Book.author_id == Author.id).scalar_subquery())).all()),
    ("single loads read on separate lines", False, None, _singles_on_separate_lines),
    ("one lazy load on a multi-row result", False, None,
     lambda s: len(s.scalars(select(Author)).all()[0].books)),
    ("delete many objects, one flush", False, None,
     lambda s: ([s.delete(r) for r in s.scalars(select(Review)).all()[:10]], s.flush())),
    ("modify many then one flush", False, None,
     lambda s: ([setattr(b, "title", "new") for b in s.scalars(select(Book)).all()], s.flush())),
]

ALL = PROBLEMS + FINE


def make_engine(url: str = "sqlite://") -> Any:
    return create_engine(url)


async def seeded_async_engine() -> Any:
    """A new in-memory aiosqlite engine holding the corpus, instrumented by pulsegate."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from pulsegate.sqlalchemy import instrument

    engine = create_async_engine("sqlite+aiosqlite://")
    instrument(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as s:
        await s.run_sync(seed)
    return engine


@contextmanager
def seeded_session() -> Iterator[Session]:
    """A session on a new in-memory database holding the corpus, its identity map
    empty, the engine instrumented by pulsegate."""
    from pulsegate.sqlalchemy import instrument

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    instrument(engine)
    with Session(engine) as s:
        seed(s)
        s.expunge_all()
        yield s
    engine.dispose()
