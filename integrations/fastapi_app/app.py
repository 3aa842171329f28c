"""Reference integration: FastAPI + SQLAlchemy 2 (async) + pulsegate.

    uvicorn app:app --port 8000          # from this directory
    DATABASE_URL=postgresql://user@host/db uvicorn app:app

pulsegate is wired with two lines (the middleware and ``instrument(engine)``); the rest
is an ordinary app with an authors/books/reviews schema and endpoints that do and do
not have N+1 problems, so you can watch the ``x-ml-*`` headers and the detections.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import ForeignKey, String, event, func, select
from sqlalchemy.ext.asyncio import AsyncAttrs, async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

from pulsegate import Config
from pulsegate.asgi import PulseGateMiddleware
from pulsegate.engine import PulseGate


def database_url() -> str:
    url = os.environ.get("DATABASE_URL") or (
        "sqlite+aiosqlite:///" + os.path.join(tempfile.gettempdir(), "pulsegate_fastapi_app.db"))
    # A plain postgresql:// URL means psycopg 3 in its async mode.
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    elif url.startswith("sqlite://"):  # and a plain sqlite:// URL means aiosqlite
        url = "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book", order_by="Review.id")


class Review(Base):
    __tablename__ = "review"
    id: Mapped[int] = mapped_column(primary_key=True)
    stars: Mapped[int]
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    book: Mapped[Book] = relationship(back_populates="reviews")


AUTHORS, BOOKS_PER_AUTHOR, REVIEWS_PER_BOOK = 8, 3, 2

engine = create_async_engine(database_url())
Session = async_sessionmaker(engine, expire_on_commit=False)

# --- pulsegate: the integration ----------------------------------------------------------
gate = PulseGate(Config.from_env())
try:
    from pulsegate.sqlalchemy import instrument

    instrument(engine)
except ImportError:  # query hooks not installed: headers without query counts
    pass

# --- an independent statement count, from SQLAlchemy's own events, to show beside ours ---
_statements: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "statements", default=None)


@event.listens_for(engine.sync_engine, "before_cursor_execute")
def _count(*args: Any) -> None:
    box = _statements.get()
    if box is not None:
        box[0] += 1


# Per-endpoint query detections seen by pulsegate (for /pulsegate/detections).
_found: dict[str, list[dict[str, Any]]] = {}


def _remember(record: Any, ctx: Any) -> None:
    if ctx.detections:
        _found[record.endpoint] = [d.as_dict() for d in ctx.detections]


gate.listeners.append(_remember)


async def seed() -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with Session() as s:
        if await s.scalar(select(func.count()).select_from(Author)):
            return
        for a in range(AUTHORS):
            s.add(Author(name=f"author {a}", books=[
                Book(title=f"book {a}.{b}",
                     reviews=[Review(stars=1 + (a + b + r) % 5) for r in range(REVIEWS_PER_BOOK)])
                for b in range(BOOKS_PER_AUTHOR)]))
        await s.commit()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await seed()
    yield
    gate.close()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.add_middleware(PulseGateMiddleware, gate=gate)


def counted(payload: dict[str, Any], box: list[int]) -> dict[str, Any]:
    payload["statements"] = box[0]
    return payload


@app.get("/authors/nplusone")
async def authors_nplusone() -> dict[str, Any]:
    """One query for the authors, then one per author for its books: N+1."""
    _statements.set(box := [0])
    async with Session() as s:
        authors = (await s.scalars(select(Author).order_by(Author.id))).all()
        out = [{"name": a.name, "books": [b.title for b in await a.awaitable_attrs.books]}
               for a in authors]
    return counted({"authors": out}, box)


@app.get("/authors/eager")
async def authors_eager() -> dict[str, Any]:
    """The fix: selectinload(Author.books) -- two queries whatever the number of authors."""
    _statements.set(box := [0])
    async with Session() as s:
        authors = (await s.scalars(
            select(Author).options(selectinload(Author.books)).order_by(Author.id))).all()
        out = [{"name": a.name, "books": [b.title for b in a.books]} for a in authors]
    return counted({"authors": out}, box)


@app.get("/books/nplusone")
async def books_nplusone() -> dict[str, Any]:
    """Many-to-one the slow way: one query per distinct author (the identity map spares
    repeats). Fix: joinedload(Book.author)."""
    _statements.set(box := [0])
    async with Session() as s:
        books = (await s.scalars(select(Book).order_by(Book.id))).all()
        out = [{"title": b.title, "author": (await b.awaitable_attrs.author).name} for b in books]
    return counted({"books": out}, box)


@app.get("/books/eager")
async def books_eager() -> dict[str, Any]:
    """The fix: joinedload(Book.author), one query."""
    _statements.set(box := [0])
    async with Session() as s:
        books = (await s.scalars(
            select(Book).options(joinedload(Book.author)).order_by(Book.id))).all()
        out = [{"title": b.title, "author": b.author.name} for b in books]
    return counted({"books": out}, box)


@app.get("/books/{book_id}")
async def book(book_id: int) -> dict[str, Any]:
    _statements.set(box := [0])
    async with Session() as s:
        found = await s.get(Book, book_id)
        if found is None:
            raise HTTPException(404, "no such book")
        return counted({"id": found.id, "title": found.title}, box)


@app.get("/slow")
async def slow() -> dict[str, Any]:
    """A slow endpoint: a query and then 300 ms of waiting on something else."""
    _statements.set(box := [0])
    async with Session() as s:
        n = await s.scalar(select(func.count()).select_from(Review))
    await asyncio.sleep(0.3)
    return counted({"reviews": n}, box)


@app.get("/stream")
async def stream(chunks: int = 5, delay_ms: float = 10) -> StreamingResponse:
    """A streaming body: pulsegate measures it until the last chunk is sent."""
    async def body() -> AsyncIterator[bytes]:
        for i in range(chunks):
            await asyncio.sleep(delay_ms / 1000)
            yield b"chunk %d\n" % i
    return StreamingResponse(body(), media_type="text/plain")


@app.post("/echo")
async def echo(request: Request) -> Response:
    """Echo the request body (chunked uploads included)."""
    return Response(await request.body(), media_type="application/octet-stream")


@app.get("/error")
async def error() -> dict[str, Any]:
    raise RuntimeError("this endpoint always fails")


@app.get("/health")
async def health() -> dict[str, str]:
    """Excluded from measuring by pulsegate's default ``exclude_paths``."""
    return {"status": "ok"}


# Routers included with a prefix: two routers share the inner path "/items/{book_id}",
# and pulsegate names each endpoint with its prefix (GET /api/v1/items/{book_id}).
catalog = APIRouter()
admin = APIRouter()


@catalog.get("/items/{book_id}")
async def catalog_item(book_id: int) -> dict[str, Any]:
    async with Session() as s:
        found = await s.get(Book, book_id)
        if found is None:
            raise HTTPException(404, "no such book")
        return {"id": found.id, "title": found.title}


@admin.get("/items/{book_id}")
async def admin_item(book_id: int) -> dict[str, Any]:
    async with Session() as s:
        found = await s.get(Book, book_id)
        if found is None:
            raise HTTPException(404, "no such book")
        return {"id": found.id, "author_id": found.author_id}


app.include_router(catalog, prefix="/api/v1")
app.include_router(admin, prefix="/api/admin")


@app.get("/pulsegate/detections")
async def detections() -> dict[str, Any]:
    """What pulsegate found, per endpoint (a debugging aid of this reference app)."""
    return {"by_endpoint": _found, "stats": gate.stats(), "endpoints": gate.endpoints()}
