"""pulsegate[fastapi,sqlalchemy] as installed: the README's two lines, nothing else.

FastAPI + a sync SQLAlchemy engine; no ``instrument(engine)`` call: the middleware
instruments every engine by default. Checks the headers, the query count, the N+1 with
its fix, and ``pulsegate report`` over the state the app persisted."""

from __future__ import annotations

import tempfile

from fastapi import FastAPI
from smoke_common import asgi_get, check_installed, ml_headers, report_shows
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from pulsegate.asgi import PulseGateMiddleware

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
                    for i in range(6))
    session.commit()

app = FastAPI()
app.add_middleware(PulseGateMiddleware, exclude_paths=["/health"], state_dir=STATE)


@app.get("/authors")
def authors() -> list[dict[str, object]]:
    with Session(engine) as s:
        return [{"name": a.name, "books": [b.title for b in a.books]}
                for a in s.scalars(select(Author))]


for _ in range(40):
    status, headers, body = asgi_get(app, "/authors")
assert status == 200 and b"b5.1" in body, (status, body)
shown = ml_headers(headers)
print(shown)
for name in ("x-ml-predicted-latency-ms", "x-ml-prediction-confidence", "x-ml-anomaly-score",
             "x-ml-optimization-applied", "x-ml-query-count", "x-ml-query-ms",
             "x-ml-nplusone", "x-ml-model-version"):
    assert name in shown, name
assert int(shown["x-ml-query-count"]) == 7, shown  # 1 for the authors, 6 lazy loads
assert int(shown["x-ml-nplusone"]) == 1, shown

mw = app.middleware_stack
while not isinstance(mw, PulseGateMiddleware):
    mw = mw.app
gate = mw.gate
assert gate.stats()["requests"] == 40, gate.stats()
fixes = {d["suggestion"] for d in gate.detections}
assert any("selectinload(Author.books)" in f for f in fixes), fixes
gate.close()  # the final snapshot, as a lifespan shutdown takes it
print(report_shows(STATE, "/authors", "selectinload(Author.books)"))
print("fastapi smoke: ok")
