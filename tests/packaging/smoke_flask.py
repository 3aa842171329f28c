"""pulsegate[flask,sqlalchemy] as installed: ``PulseGate(app)`` and plain SQLAlchemy.

Driven by Flask's own test client without ``buffered=True`` (it never closes the
response): every request is still learned, queries counted, the N+1 found."""

from __future__ import annotations

import tempfile

from flask import Flask
from smoke_common import check_installed, ml_headers, report_shows
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from pulsegate.flask import PulseGate, get_gate

check_installed()
STATE = tempfile.mkdtemp(prefix="pulsegate-smoke-")
engine = create_engine("sqlite://", poolclass=StaticPool,
                       connect_args={"check_same_thread": False})


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


Base.metadata.create_all(engine)
with Session(engine) as session:
    session.add_all(Author(name=f"a{i}", books=[Book(title=f"b{i}.{j}") for j in range(2)])
                    for i in range(5))
    session.commit()

app = Flask(__name__)
app.config["PULSEGATE_STATE_DIR"] = STATE
PulseGate(app)


@app.get("/authors")
def authors() -> list[dict[str, object]]:
    with Session(engine) as s:
        return [{"name": a.name, "books": [b.title for b in a.books]}
                for a in s.scalars(select(Author))]


client = app.test_client()
for _ in range(40):
    response = client.get("/authors")
assert response.status_code == 200 and response.json is not None
shown = ml_headers(response.headers)
print(shown)
assert int(shown["x-ml-query-count"]) == 6 and int(shown["x-ml-nplusone"]) == 1, shown
gate = get_gate(app)
assert gate.stats()["requests"] == 40, gate.stats()
assert "x-ml-predicted-latency-ms" in shown
assert any("selectinload(Author.books)" in d["suggestion"] for d in gate.detections)
gate.close()
print(report_shows(STATE, "/authors", "selectinload(Author.books)"))
print("flask smoke: ok")
