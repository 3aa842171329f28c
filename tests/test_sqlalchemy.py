"""SQLAlchemy instrumentation on the scenario corpus (sync and async), the hooks' cost
outside a request, and the detector's precision/recall on this ORM."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from corpus_scoring import precision_recall
from pulsegate import capture
from pulsegate.queries import QueryEvent
from pulsegate.sqlalchemy import instrument, is_instrumented
from sa_corpus import ALL, FINE, PROBLEMS, Author, Base, Book, seeded_async_engine, seeded_session

# These tests create query problems on purpose; the plugin must not warn about them.
pytestmark = pytest.mark.pulsegate(nplusone="off")


@pytest.fixture()
def session() -> Iterator[Session]:
    with seeded_session() as s:
        yield s


@pytest.mark.parametrize("name,problem,kind,run", ALL, ids=[s[0] for s in ALL])
def test_scenario(session: Session, name: str, problem: bool, kind: str | None, run: object) -> None:
    with capture() as cap:
        run(session)  # type: ignore[operator]
    assert cap.query_count > 0 or name == "get from identity map"
    if problem:
        assert cap.detections, f"{name}: missed\n{cap.report()}"
        assert kind in {d.kind for d in cap.detections}, cap.report()
        assert all(d.call_site and d.call_site.startswith("tests/sa_corpus.py") for d in cap.detections)
    else:
        assert cap.detections == [], f"{name}: false alarm\n{cap.report()}"


def test_precision_recall_sqlalchemy(session: Session) -> None:
    def detects(run: Any) -> bool:
        session.rollback()
        session.expunge_all()
        with capture() as cap:
            run(session)
        return bool(cap.detections)

    precision, recall = precision_recall(ALL, detects)
    print(f"\nSQLAlchemy corpus: {len(PROBLEMS)} problems, {len(FINE)} non-problems: "
          f"precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98


def test_relationship_names_and_exact_fixes(session: Session) -> None:
    with capture() as cap:
        [len(a.books) for a in session.scalars(select(Author))]
    (d,) = cap.detections
    assert (d.relationship, d.suggestion) == ("Author.books", "options(selectinload(Author.books))")
    assert d.count == 10 and d.sql.startswith("select sa_book.id")
    session.expunge_all()
    with capture() as cap:
        [b.author.name for b in session.scalars(select(Book))]
    assert cap.detections[0].suggestion == "options(joinedload(Book.author))"
    session.expunge_all()
    with capture() as cap:
        [session.get(Author, i) for i in range(1, 11)]
    assert "select(Author).where(Author.id.in_(ids))" in cap.detections[0].suggestion
    with capture() as cap:
        [session.add(Author(name=str(i))) or session.flush() for i in range(6)]
    assert "insert(Author)" in cap.detections[0].suggestion


def test_async_session_awaitable_attrs() -> None:
    async def main() -> tuple[list[object], list[object]]:
        engine = await seeded_async_engine()
        async with AsyncSession(engine) as s, capture() as bad:
            for a in (await s.scalars(select(Author))).all():
                await a.awaitable_attrs.books
        async with AsyncSession(engine) as s, capture() as good:
            authors = (await s.scalars(select(Author).options(selectinload(Author.books)))).all()
            [len(a.books) for a in authors]
        await engine.dispose()
        return bad.detections, good.detections  # type: ignore[return-value]

    bad, good = asyncio.run(main())
    assert good == []
    (d,) = bad
    assert d.relationship == "Author.books" and d.suggestion == "options(selectinload(Author.books))"
    assert d.call_site is not None and "test_sqlalchemy.py" in d.call_site  # across the greenlet


def test_instrument_is_idempotent_and_global_form_records_once() -> None:
    engine = create_engine("sqlite://")
    instrument(engine)
    instrument(engine)
    instrument()  # class-level too: still one event per statement
    assert is_instrumented(engine)
    try:
        with capture() as cap, engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        assert cap.query_count == 1
        ev = cap.queries[0]
        assert isinstance(ev, QueryEvent) and ev.orm == "sqlalchemy" and ev.db == "sqlite"
        assert ev.params_count == 0 and ev.duration_ms >= 0
    finally:
        from pulsegate.sqlalchemy import uninstrument
        uninstrument()


def test_outside_any_sink_the_dialect_runs_the_statement() -> None:
    from pulsegate.sqlalchemy import _do_execute

    engine = create_engine("sqlite://")
    instrument(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select ?", (7,)).scalar() == 7  # SQLAlchemy executed it
        raw = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        from sqlalchemy.engine.interfaces import ExecuteStyle

        # (what the hook reads of a real execution context)
        ctx = type("Ctx", (), {"dialect": engine.dialect, "executemany": False,
                               "execute_style": ExecuteStyle.EXECUTE})()
        assert _do_execute(raw, "select 1", (), ctx) is False  # no sink: not ours to run
        with capture() as cap:
            assert _do_execute(raw, "select ?", (1,), ctx) is True
            assert raw.fetchall() == [(1,)]
    assert cap.query_count == 1 and cap.queries[0].params_count == 1


def test_selectinload_batches_over_many_parents_are_not_an_n_plus_one() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    instrument(engine)
    with Session(engine) as s:
        s.execute(insert(Author), [{"name": f"a{i}"} for i in range(2600)])
        s.commit()
        with capture() as cap:
            authors = s.scalars(select(Author).options(selectinload(Author.books))).all()
        assert len(authors) == 2600
        batches = [q for q in cap.queries if q.relationship == "Author.books"]
        assert len(batches) >= 5 and {q.load for q in batches} == {"batch"}
        assert cap.detections == []


_WITHOUT_GREENLET = """
import sys
sys.modules["greenlet"] = None  # as on SQLAlchemy 2.1, which no longer installs it
from sqlalchemy import create_engine, text
from pulsegate import capture
from pulsegate.sqlalchemy import instrument
assert "sqlalchemy.ext.asyncio" not in sys.modules, "imported the asyncio extension"
engine = create_engine("sqlite://")
instrument(engine)
with capture() as cap:
    with engine.connect() as conn:
        conn.execute(text("select 1"))
print(cap.query_count)
"""


def test_sync_engines_need_no_greenlet() -> None:
    """Issue 20: ``from pulsegate.sqlalchemy import instrument`` and the first capture
    work for a sync engine when greenlet cannot be imported (SQLAlchemy 2.1's default):
    the asyncio extension is imported only when an AsyncEngine exists."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WITHOUT_GREENLET], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


JINJA_PAGE = """<ul>
{% for book in books %}
  <li>{{ book.title }}
    by {{ book.author.name }}</li>
{% endfor %}
</ul>
"""


def test_call_site_in_a_jinja_template_is_the_template_line(session: Session, tmp_path: Any) -> None:
    """The lazy load a template triggers is named by the template file and line (4),
    not by the line of the Python module Jinja compiled it to; and a loop in Python code
    through the same ORM path, alternating with it, keeps its own call site."""
    from jinja2 import Environment, FileSystemLoader

    (tmp_path / "books.html").write_text(JINJA_PAGE)
    page = Environment(loader=FileSystemLoader(str(tmp_path))).get_template("books.html")

    def python_loop(books: list[Book]) -> list[str]:
        return [b.author.name for b in books]

    for _round in range(2):
        for render in (lambda bs: page.render(books=bs), python_loop):
            with capture() as cap:
                render(list(session.scalars(select(Book).where(Book.title.like("b_0")))))
            (d,) = cap.detections
            assert d.kind == "n_plus_one" and d.count >= 5
            if render is python_loop:
                assert d.call_site and "test_sqlalchemy.py:" in d.call_site
                assert d.call_site.endswith("in <listcomp>") or d.call_site.endswith("in python_loop")
            else:
                assert d.call_site == f"{tmp_path / 'books.html'}:4 in template"
            session.expunge_all()


def test_async_two_object_fixture_is_an_n_plus_one_and_single_gets_are_not() -> None:
    """The structural rule across the async session's greenlet: the parents' result tag
    travels with the instances, so two authors are enough; two ``session.get`` read on
    separate lines are not a loop."""
    async def main() -> tuple[list[object], list[object]]:
        engine = await seeded_async_engine()
        async with AsyncSession(engine) as s, capture() as loop:
            for a in (await s.scalars(select(Author).limit(2))).all():
                await a.awaitable_attrs.books
        async with AsyncSession(engine) as s, capture() as singles:
            first = await s.get(Author, 1)
            second = await s.get(Author, 2)
            assert first is not None and second is not None
            await first.awaitable_attrs.books
            await second.awaitable_attrs.books
        await engine.dispose()
        return loop.detections, singles.detections  # type: ignore[return-value]

    loop, singles = asyncio.run(main())
    assert [(d.kind, d.count, d.relationship) for d in loop] == [  # type: ignore[attr-defined]
        ("n_plus_one", 2, "Author.books")]
    assert singles == []


def test_orm_loads_are_named_from_the_execution_context_alone(session: Session) -> None:
    """Lazy (scalar and collection), batch, deferred and expired loads are each named,
    with no Session-level listener: ORM executions stay on SQLAlchemy's own path."""
    from sqlalchemy.orm import defer

    assert not session.dispatch.do_orm_execute  # nothing between the Session and the ORM
    with capture() as cap:
        book = session.scalars(select(Book).options(defer(Book.summary)).limit(1)).one()
        _ = book.author.name, book.summary
        _ = [len(a.books) for a in session.scalars(select(Author).offset(5).limit(2))]
        list(session.scalars(select(Author).options(selectinload(Author.books)).limit(2)))
        session.expire(book)
        _ = book.title
    marks = [(q.relationship, q.load) for q in cap.queries if q.relationship]
    assert marks == [("Book.author", "scalar"), ("Book.summary", "deferred"),
                     ("Author.books", "collection"), ("Author.books", "collection"),
                     ("Author.books", "batch"), ("Book", "expired")]
    # the instance each lazy load serves: both come from one two-row result
    sources = [q.source for q in cap.queries if q.load == "collection"]
    assert sources[0] is not None and sources[0] is sources[1] and sources[0][0].rows == 2


def test_a_streamed_result_and_a_committed_one_are_still_one_multi_row_result(
        session: Session) -> None:
    """Where a lazily loaded instance came from is resolved when the load asks: a
    ``yield_per`` stream builds its second row after the first row's load, and a commit
    expires the instances, so each is refreshed (with its own result number) before its
    relationship loads -- both loops are still an N+1 over one result, not single loads."""
    with capture() as streamed:
        for a in session.scalars(select(Author).execution_options(yield_per=1).limit(3)):
            _ = a.books
    authors = session.scalars(select(Author).limit(3)).all()
    session.commit()
    with capture() as committed:
        for a in authors:
            _ = a.books
    assert [(d.kind, d.count, d.relationship) for d in streamed.detections] == [
        ("n_plus_one", 3, "Author.books")], streamed.report()
    # the refreshes ran, one per instance of one result: an N+1 of their own
    assert sorted((d.kind, d.count, d.relationship) for d in committed.detections) == [
        ("n_plus_one", 3, "Author"), ("n_plus_one", 3, "Author.books")], committed.report()


def test_unused_eager_loads_are_reported_only_when_asked(session: Session) -> None:
    """An eager load nothing reads is its own kind, with the option to remove; off by
    default; a relationship read (here through a comprehension) is not reported."""
    from sqlalchemy.orm import joinedload

    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    def page() -> list[int]:
        authors = session.scalars(select(Author).options(
            selectinload(Author.books), joinedload(Author.profile))).unique().all()
        return [len(a.books) for a in authors]

    with capture(unused_eager_loads=True) as cap:
        page()
    assert [(d.kind, d.relationship, d.suggestion.split(":")[0]) for d in cap.detections] == [
        ("unused_eager_load", "Author.profile", "remove joinedload(Author.profile) from this query")]
    assert cap.detections[0].call_site is not None and "test_sqlalchemy.py" in cap.detections[0].call_site
    session.expunge_all()
    with capture() as default:
        page()
    assert default.detections == []
    session.expunge_all()
    gate = PulseGate(unused_eager_loads=True)
    ctx = gate.begin(RequestInfo("GET", "/authors", route="/authors"))
    assert ctx is not None
    page()
    gate.response_headers(ctx, 200)
    gate.finish(ctx, 200)
    assert [(d.kind, d.relationship) for d in ctx.detections] == [
        ("unused_eager_load", "Author.profile")]
    # a gate that did not ask reports nothing, and keeps nothing of its request after it
    from pulsegate.queries import eager

    session.expunge_all()
    plain = PulseGate()
    other = plain.begin(RequestInfo("GET", "/authors", route="/authors"))
    assert other is not None
    page()
    plain.response_headers(other, 200)
    assert eager.unused(other) != []  # recorded (recording is process-wide once on) ...
    plain.finish(other, 200)
    assert eager.unused(other) == [] and other.detections == []  # ... forgotten, unreported


def test_nplusones_rule_judges_by_the_querys_form(session: Session) -> None:
    """``single_lazy_loads=True``: a lazy load of an instance fetched by a list form
    (``.all()``, iteration, ``.scalars()``) is an N+1 even when the list had one row;
    single-object forms (``first``, ``one``, ``one_or_none``, ``scalar_one``,
    ``session.get``, ``Query.get``) are not -- also when the instance was fetched before
    the capture began (a fixture's ``session.get``). The default rule sees none of them."""
    from sqlalchemy.orm import Query

    from pulsegate.queries import NPlusOneDetector

    NPlusOneDetector(single_lazy_loads=True)  # the forms are marked from now on
    one = select(Author).where(Author.id == 1)
    before = session.get(Author, 2)
    listed: list[Any] = [
        lambda: session.scalars(one).all()[0].books,
        lambda: [a.books for a in session.scalars(one)],
        lambda: session.execute(one).all()[0][0].profile,
        lambda: session.query(Author).filter(Author.id == 1).all()[0].books,
    ]
    single: list[Any] = [
        lambda: session.scalars(select(Author)).first().books,  # type: ignore[union-attr]
        lambda: session.scalars(one).one().books,
        lambda: session.scalars(one).one_or_none().books,  # type: ignore[union-attr]
        lambda: session.execute(one).scalar_one().books,
        lambda: session.execute(one).first()[0].books,  # type: ignore[index]
        lambda: session.scalar(one).books,  # type: ignore[union-attr]
        lambda: session.get(Author, 1).books,  # type: ignore[union-attr]
        lambda: Query(Author, session).first().books,  # type: ignore[union-attr]
        lambda: before.books,  # type: ignore[union-attr]
    ]
    for i, run in enumerate(listed + single):
        session.expire_all()
        with capture() as default, capture(single_lazy_loads=True) as nplusone:
            run()
        assert default.detections == [], (i, default.report())
        kinds = [(d.kind, d.relationship) for d in nplusone.detections]
        if i < len(listed):
            assert kinds in ([("n_plus_one", "Author.books")],
                             [("n_plus_one", "Author.profile")]), (i, nplusone.report())
        else:
            assert kinds == [], (i, nplusone.report())
    # a commit expires the list's instances; each is refreshed by a single-object form
    # (``one()``) before its relationship loads, and keeps the form of its list
    authors = session.scalars(select(Author).limit(2)).all()
    session.commit()
    with capture(single_lazy_loads=True) as refreshed:
        _ = [a.books for a in authors]
    assert ("n_plus_one", "Author.books") in [
        (d.kind, d.relationship) for d in refreshed.detections], refreshed.report()


def test_a_gate_judges_requests_by_nplusones_rule_when_asked(session: Session) -> None:
    """The gate option ``single_lazy_loads``: a request reading the relationship of the
    one author of ``.all()`` has an N+1 there, and none with the default rule."""
    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    found = {}
    for single in (False, True):
        session.expunge_all()
        gate = PulseGate(single_lazy_loads=single)
        ctx = gate.begin(RequestInfo("GET", "/authors/1", route="/authors/{id}"))
        assert ctx is not None
        _ = session.scalars(select(Author).where(Author.id == 1)).all()[0].books
        gate.response_headers(ctx, 200)
        gate.finish(ctx, 200)
        found[single] = [(d.kind, d.relationship) for d in ctx.detections]
    assert found == {False: [], True: [("n_plus_one", "Author.books")]}
