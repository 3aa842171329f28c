"""Reference integration: Flask + Flask-SQLAlchemy + pulsegate, served by gunicorn.

    gunicorn 'app:create_app()' --bind 127.0.0.1:8000      # from this directory
    DATABASE_URL=postgresql://user@host/db gunicorn 'app:create_app()'

pulsegate is one line, ``PulseGate(app)``: it wraps ``app.wsgi_app``, reads
``PULSEGATE_*`` config keys (and environment variables) and instruments Flask-SQLAlchemy's engines by itself.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, abort, g, render_template, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, event, func, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

from pulsegate.flask import PulseGate, get_gate


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Author(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book", order_by="Review.id")


class Review(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "review"
    id: Mapped[int] = mapped_column(primary_key=True)
    stars: Mapped[int]
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    book: Mapped[Book] = relationship(back_populates="reviews")


AUTHORS, BOOKS_PER_AUTHOR, REVIEWS_PER_BOOK = 8, 3, 2


def database_url() -> str:
    url = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + os.path.join(tempfile.gettempdir(), "pulsegate_flask_app.db"))
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def seed() -> None:
    db.create_all()
    if db.session.scalar(select(func.count()).select_from(Author)):
        return
    for a in range(AUTHORS):
        db.session.add(Author(name=f"author {a}", books=[
            Book(title=f"book {a}.{b}",
                 reviews=[Review(stars=1 + (a + b + r) % 5) for r in range(REVIEWS_PER_BOOK)])
            for b in range(BOOKS_PER_AUTHOR)]))
    db.session.commit()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url()
    db.init_app(app)
    PulseGate(app)  # <- the whole integration

    # Per-endpoint detections pulsegate found (for /pulsegate/detections).
    found: dict[str, list[dict[str, Any]]] = {}

    def remember(record: Any, ctx: Any) -> None:
        if ctx.detections:
            found[record.endpoint] = [d.as_dict() for d in ctx.detections]

    get_gate(app).listeners.append(remember)

    with app.app_context():
        seed()
        # An independent statement count from SQLAlchemy's own events.
        @event.listens_for(db.engine, "before_cursor_execute")
        def count(*args: Any) -> None:
            if "statements" in g:
                g.statements += 1

    def start_count() -> None:
        g.statements = 0

    app.before_request(start_count)

    def counted(payload: dict[str, Any]) -> dict[str, Any]:
        payload["statements"] = g.statements
        return payload

    @app.get("/authors/nplusone")
    def authors_nplusone() -> dict[str, Any]:
        """One query for the authors, then one per author for its books: N+1."""
        authors = db.session.scalars(select(Author).order_by(Author.id)).all()
        return counted({"authors": [{"name": a.name, "books": [b.title for b in a.books]}
                                    for a in authors]})

    @app.get("/authors/eager")
    def authors_eager() -> dict[str, Any]:
        """The fix: selectinload(Author.books), two queries."""
        authors = db.session.scalars(
            select(Author).options(selectinload(Author.books)).order_by(Author.id)).all()
        return counted({"authors": [{"name": a.name, "books": [b.title for b in a.books]}
                                    for a in authors]})

    @app.get("/books/nplusone")
    def books_nplusone() -> dict[str, Any]:
        """Many-to-one the slow way: one query per distinct author (the identity map
        spares repeats). Fix: joinedload(Book.author)."""
        books = db.session.scalars(select(Book).order_by(Book.id)).all()
        return counted({"books": [{"title": b.title, "author": b.author.name} for b in books]})

    @app.get("/books/eager")
    def books_eager() -> dict[str, Any]:
        """The fix: joinedload(Book.author), one query."""
        books = db.session.scalars(
            select(Book).options(joinedload(Book.author)).order_by(Book.id)).all()
        return counted({"books": [{"title": b.title, "author": b.author.name} for b in books]})

    @app.get("/books/page")
    def books_page() -> str:
        """An HTML page whose Jinja template reads each book's author lazily: the N+1 a
        real app has, named by the template line (books_page.html:6)."""
        books = db.session.scalars(select(Book).order_by(Book.id)).all()
        return render_template("books_page.html", books=books)

    @app.get("/books/<int:book_id>")
    def book(book_id: int) -> dict[str, Any]:
        found_book = db.session.get(Book, book_id)
        if found_book is None:
            abort(404)
        return counted({"id": found_book.id, "title": found_book.title})

    @app.get("/slow")
    def slow() -> dict[str, Any]:
        """A slow endpoint: a query and then 300 ms of waiting on something else."""
        n = db.session.scalar(select(func.count()).select_from(Review))
        time.sleep(0.3)
        return counted({"reviews": n})

    @app.get("/stream")
    def stream() -> Response:
        """A streaming body: pulsegate measures it until gunicorn closes the response."""
        chunks = request.args.get("chunks", 5, type=int)
        delay = request.args.get("delay_ms", 10.0, type=float) / 1000

        def body() -> Iterator[bytes]:
            for i in range(chunks):
                time.sleep(delay)
                yield b"chunk %d\n" % i
        return Response(body(), mimetype="text/plain")

    @app.post("/echo")
    def echo() -> Response:
        """Echo the request body (chunked uploads included)."""
        return Response(request.get_data(), mimetype="application/octet-stream")

    @app.get("/error")
    def error() -> dict[str, Any]:
        raise RuntimeError("this endpoint always fails")

    @app.get("/health")
    def health() -> dict[str, str]:
        """Excluded from measuring by pulsegate's default ``exclude_paths``."""
        return {"status": "ok"}

    @app.get("/pulsegate/detections")
    def detections() -> dict[str, Any]:
        return {"by_endpoint": found, "stats": get_gate(app).stats(),
                "endpoints": get_gate(app).endpoints()}

    return app
