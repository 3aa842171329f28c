"""The demo's FastAPI app: SQLAlchemy on SQLite, an N+1-prone relationship, a table
read by an unindexed column (the query advisor's case), a fast, a slow (regressing) and a
flaky endpoint, a cached price from an upstream service (:mod:`pulsegate.demo_io`) and
catalog pages the response cache serves (:mod:`pulsegate.demo_cache`).
Imported by :mod:`pulsegate.demo` only."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

from pulsegate.asgi import PulseGateMiddleware
from pulsegate.control.healing import degraded
from pulsegate.demo_io import attach as attach_io
from pulsegate.engine import PulseGate


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


class Review(Base):
    """Read by ``book_id``, which has no index: the query advisor's finding."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column()
    stars: Mapped[int] = mapped_column()


def build_app(gate: PulseGate, db_path: Path, state: dict[str, Any]) -> FastAPI:
    """The demo's FastAPI app: SQLAlchemy on SQLite, with an N+1-prone relationship."""
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"check_same_thread": False})
    _instrument(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for a in range(12):
            author = Author(name=f"author {a}")
            author.books = [Book(title=f"book {a}.{b}") for b in range(3)]
            session.add(author)
        session.add_all(Review(book_id=i % 36 + 1, stars=i % 5 + 1) for i in range(3000))
        session.commit()

    app = FastAPI(title="pulsegate demo")
    # mypy cannot match keyword options against Starlette's ParamSpec'd factory (it
    # rejects Starlette's own middleware classes the same way); the call is correct.
    app.add_middleware(PulseGateMiddleware, gate=gate)  # type: ignore[arg-type]

    @app.get("/fast")
    def fast() -> dict[str, int]:
        return {"answer": sum(range(200))}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            book = session.get(Book, item_id % 36 + 1)
            return {"id": item_id, "title": book.title if book else None}

    @app.get("/reviews/{book_id}")
    def reviews(book_id: int) -> dict[str, Any]:
        with Session(engine) as session:
            rows = session.scalars(select(Review).where(Review.book_id == book_id % 36 + 1))
            return {"book": book_id, "stars": [r.stars for r in rows][:10]}

    prices, transport = attach_io(gate)
    clients: dict[str, httpx.AsyncClient] = {}

    @app.get("/pricing/{item_id}")
    async def pricing(item_id: int, request: Request) -> dict[str, Any]:
        # a cache in front of a pricing service (another process in real life)
        key = f"price:{item_id % 40}"
        price = prices.get(key)
        if price is None:
            client = clients.get("pricing")
            if client is None:  # one client for the app's life (its transport counts)
                client = clients["pricing"] = httpx.AsyncClient(transport=transport)
            url = f"{request.base_url}upstream/price/{item_id % 40}"
            price = (await client.get(url)).json()["price"]
            prices.set(key, price)
        return {"id": item_id, "price": price}

    @app.get("/upstream/price/{item_id}")
    async def upstream_price(item_id: int) -> dict[str, float]:
        await asyncio.sleep(0.004)  # the pricing service (excluded from the gate)
        return {"price": round(1.5 * item_id + 9.99, 2)}

    @app.get("/authors")
    def authors_lazy() -> list[dict[str, Any]]:
        # N+1: each author's books are lazy-loaded, one query per author.
        with Session(engine) as session:
            rows = session.scalars(select(Author)).all()
            return [{"name": a.name, "books": [b.title for b in a.books]} for a in rows]

    @app.get("/authors/eager")
    def authors_eager() -> list[dict[str, Any]]:
        with Session(engine) as session:
            rows = session.scalars(select(Author).options(selectinload(Author.books))).all()
            return [{"name": a.name, "books": [b.title for b in a.books]} for a in rows]

    @app.get("/slow")
    async def slow() -> dict[str, float]:
        # Regresses part-way through the run: 15 ms, then 60 ms. Once that is an
        # incident the demo's healing action degrades it: the cheaper variant (a cached
        # quote, 5 ms) is served, with x-ml-optimization-applied: degrade.
        if degraded():
            await asyncio.sleep(0.005 * random.uniform(0.9, 1.1))
            return {"slept_ms": 5.0}
        delay = 0.060 if state.get("degraded") else 0.015
        await asyncio.sleep(delay * random.uniform(0.9, 1.1))
        return {"slept_ms": delay * 1000}

    catalog: dict[int, int] = {}  # page -> version (PUT by the demo's editor)

    @app.get("/catalog/{page}")
    async def catalog_page(page: int) -> dict[str, Any]:
        # The same for everyone, 8 ms to render: the response cache learns and serves it.
        await asyncio.sleep(0.008)
        return {"page": page, "version": catalog.get(page, 0),
                "products": [f"product {page}.{i}" for i in range(10)]}

    @app.put("/catalog/{page}")
    async def catalog_write(page: int, request: Request) -> dict[str, int]:
        catalog[page] = int((await request.json())["version"])
        return {"page": page, "version": catalog[page]}

    inflight = {"report": 0}

    @app.get("/report")
    async def report() -> dict[str, int]:
        # A heavy, low-priority export whose latency grows with its own concurrency:
        # under a spike it would drag everything past the latency target.
        inflight["report"] += 1
        try:
            await asyncio.sleep(0.020 + 0.004 * inflight["report"])
            return {"rows": 1000}
        finally:
            inflight["report"] -= 1

    @app.get("/flaky")
    async def flaky() -> dict[str, str]:
        await asyncio.sleep(0.003)
        if random.random() < 0.1:
            raise HTTPException(500, "flaky backend")
        return {"ok": "yes"}

    return app


def _instrument(engine: Any) -> None:
    try:
        from pulsegate.sqlalchemy import instrument
    except ImportError:  # SQLAlchemy instrumentation unavailable: the demo still runs
        return
    instrument(engine)
