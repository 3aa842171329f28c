"""Django ORM instrumentation on the scenario corpus, relationship names and fixes, and
the detector's precision/recall on this ORM."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import dj_corpus
import pytest
from django.db import connection, transaction

from corpus_scoring import precision_recall
from pulsegate import capture
from pulsegate.django.instrument import install, query_wrapper

pytestmark = pytest.mark.pulsegate(nplusone="off")

_ready = False


@pytest.fixture()
def db() -> Iterator[None]:
    global _ready
    install()
    if not _ready:
        dj_corpus.create_schema()
        _ready = True
    sid = transaction.savepoint() if connection.in_atomic_block else None
    with transaction.atomic():
        dj_corpus.seed()
        yield
        transaction.set_rollback(True)
    assert sid is None


@pytest.mark.parametrize("name,problem,kind,run", dj_corpus.ALL, ids=[s[0] for s in dj_corpus.ALL])
def test_scenario(db: None, name: str, problem: bool, kind: str | None, run: object) -> None:
    with capture() as cap:
        run()  # type: ignore[operator]
    assert cap.query_count > 0
    if problem:
        assert cap.detections, f"{name}: missed\n{cap.report()}"
        assert kind in {d.kind for d in cap.detections}, cap.report()
        assert all(d.call_site and "dj_corpus.py" in d.call_site for d in cap.detections)
    else:
        assert cap.detections == [], f"{name}: false alarm\n{cap.report()}"


def test_precision_recall_django(db: None) -> None:
    def detects(run: Any) -> bool:
        sid = transaction.savepoint()
        with capture() as cap:
            run()
        transaction.savepoint_rollback(sid)
        return bool(cap.detections)

    precision, recall = precision_recall(dj_corpus.ALL, detects)
    print(f"\nDjango corpus: {len(dj_corpus.PROBLEMS)} problems, {len(dj_corpus.FINE)} non-problems: "
          f"precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98


def _first(run: object) -> object:
    with capture() as cap:
        run()  # type: ignore[operator]
    return cap.detections[0]


def test_relationship_names_and_exact_fixes(db: None) -> None:
    A, B, P, T = dj_corpus.Author, dj_corpus.Book, dj_corpus.Profile, dj_corpus.Tag
    cases = [
        (lambda: [list(a.books.all()) for a in A.objects.all()], "Author.books", 'prefetch_related("books")'),
        (lambda: [b.author.name for b in B.objects.all()], "Book.author", 'select_related("author")'),
        (lambda: [p.author.name for p in P.objects.all()], "Profile.author", 'select_related("author")'),
        (lambda: [a.profile.bio for a in A.objects.all()], "Author.profile", 'select_related("profile")'),
        (lambda: [list(b.tags.all()) for b in B.objects.all()], "Book.tags", 'prefetch_related("tags")'),
        (lambda: [list(t.books.all()) for t in T.objects.all()], "Tag.books", 'prefetch_related("books")'),
        (lambda: [a.books.count() for a in A.objects.all()], "Author.books",
         'count in the list query: .annotate(Count("books"))'),
    ]
    for run, rel, fix in cases:
        d = _first(run)
        assert (d.relationship, d.suggestion) == (rel, fix)  # type: ignore[attr-defined]
    d = _first(lambda: [b.title for b in B.objects.only("id")])
    assert d.relationship == "Book.title" and '.only(' in d.suggestion  # type: ignore[attr-defined]
    d = _first(lambda: [A.objects.get(pk=i) for i in range(1, 11)])
    assert "Author.objects.in_bulk(ids)" in d.suggestion  # type: ignore[attr-defined]
    d = _first(lambda: [T.objects.create(name=str(i)) for i in range(6)])
    assert "Tag.objects.bulk_create" in d.suggestion  # type: ignore[attr-defined]


def test_wrapper_installed_once_and_first(db: None) -> None:
    install()
    install()
    assert [w for w in connection.execute_wrappers if w is query_wrapper] == [query_wrapper]
    with connection.execute_wrapper(lambda execute, *a: execute(*a)), capture() as cap:
        list(dj_corpus.Tag.objects.all())
    assert connection.execute_wrappers[0] is query_wrapper
    assert cap.query_count == 1 and cap.queries[0].orm == "django"


def test_async_code_and_new_threads_are_instrumented() -> None:
    """Django's async ORM runs queries through sync_to_async in another thread, whose
    connection is created there: connection_created installs the wrapper, and the
    capture's ContextVar travels with the call."""
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    install()

    def lookup(i: int) -> int:
        with connections["default"].cursor() as cur:
            cur.execute("SELECT %s", (i,))
            value = cur.fetchone()[0]
        connections["default"].close()
        return int(value)

    async def main() -> list[object]:
        async with capture() as cap:
            for i in range(6):
                assert await sync_to_async(lookup, thread_sensitive=False)(i) == i
        return cap.detections

    (d,) = asyncio.run(main())
    assert d.kind == "n_plus_one" and d.count == 6 and d.call_site is not None
    assert "test_django_queries.py" in d.call_site and "in lookup" in d.call_site


DJANGO_PAGE = """<ul>
{% for book in books %}
  <li>{{ book.title }}
    by {{ book.author.name }}</li>
{% endfor %}
</ul>
"""


def test_call_site_in_a_django_template_is_the_template_line(db: None, tmp_path: Any) -> None:
    """A lazy relation read by a Django template is named by the template file and the
    tag's line, however deep the stack (a render under a server and a middleware chain
    is more than 80 frames down: it was "unknown call site")."""
    from django.template import Context, Engine

    install()
    (tmp_path / "books.html").write_text(DJANGO_PAGE)
    page = Engine(dirs=[str(tmp_path)]).get_template("books.html")

    def deep(n: int) -> str:
        if n:
            return deep(n - 1)
        return page.render(Context({"books": dj_corpus.Book.objects.all()[:8]}))

    for depth in (0, 150, 0):
        with capture() as cap:
            deep(depth)
        (d,) = cap.detections
        assert d.kind == "n_plus_one" and d.call_site == f"{tmp_path / 'books.html'}:4 in template"


DJANGO_TWO_TAGS = """{% for book in first %}
  {% if book.author %}.{% endif %}
{% endfor %}
{% for book in second %}
  {{ book.author.name }}
{% endfor %}"""


def test_one_statement_from_two_template_tags_names_each_tag(db: None, tmp_path: Any) -> None:
    """The same lazy load run by an ``{% if %}`` on line 2 and by a variable on line 5,
    rendered three times (learnt paths): each statement is named by its own tag's line
    -- a node frame is named only when it is the innermost one."""
    from django.template import Context, Engine

    install()
    (tmp_path / "two.html").write_text(DJANGO_TWO_TAGS)
    page = Engine(dirs=[str(tmp_path)]).get_template("two.html")
    for _round in range(3):
        first, second = list(dj_corpus.Book.objects.all()[:4]), list(dj_corpus.Book.objects.all()[:3])
        with capture() as cap:
            page.render(Context({"first": first, "second": second}))
        assert [ev.call_site for ev in cap.queries] == \
            [f"{tmp_path / 'two.html'}:2 in template"] * 4 + [f"{tmp_path / 'two.html'}:5 in template"] * 3


def test_the_vendor_reaches_the_fingerprint_and_sqlites_string_quotes_are_redacted(db: None) -> None:
    """Django tells the hook its ``connection.vendor``: on SQLite a double-quoted
    unknown name is a string (SQLite's fallback) and must not reach the report, while
    Django's own quoted names keep the shape."""
    table = dj_corpus.Book._meta.db_table
    with capture() as cap, connection.cursor() as cursor:
        for _ in range(6):
            cursor.execute(f'SELECT "{table}"."id" FROM "{table}" WHERE "ZqDjangoLeak" = %s',
                           ["x"])
    assert {ev.db for ev in cap.queries} == {"sqlite"}
    (det,) = cap.detections
    assert det.sql == f'select "{table}"."id" from "{table}" where ? = ?'
    assert "zqdjangoleak" not in cap.report().lower()


def test_unused_eager_loads_are_reported_only_when_asked(db: None) -> None:
    """``select_related``/``prefetch_related`` nothing reads is ``unused_eager_load``,
    with the lookup to remove; off by default; relationships read are not reported."""
    def page() -> list[int]:
        books = list(dj_corpus.Book.objects.select_related("author").prefetch_related("tags"))
        return [len(b.tags.all()) for b in books]

    with capture(unused_eager_loads=True) as cap:
        page()
    assert [(d.kind, d.relationship, d.suggestion.split(":")[0]) for d in cap.detections] == [
        ("unused_eager_load", "Book.author", 'remove select_related("author") from this query')]
    assert cap.detections[0].call_site and "test_django_queries.py" in cap.detections[0].call_site
    with capture() as default:
        page()
    assert default.detections == []
    with capture(unused_eager_loads=True) as read:
        _ = [b.author.name for b in dj_corpus.Book.objects.select_related("author")]
    assert read.detections == []


def test_nplusones_rule_judges_by_the_querys_form(db: None) -> None:
    """``single_lazy_loads=True``: a lazy relationship load of an instance fetched by a
    list form (iterating a queryset, ``list(qs)``, ``iterator()``) is an N+1 even when
    the list had one row; a one-row slice (``first()``, ``last()``, ``qs[0]``) and
    ``get()`` (also a related manager's, also ``earliest()``) are single loads. The
    default rule sees none of them."""
    pk = dj_corpus.Author.objects.order_by("pk")[0].pk
    book = dj_corpus.Book.objects.filter(author_id=pk)[0].pk

    def one() -> Any:  # a fresh queryset of one author each time (no result cache)
        return dj_corpus.Author.objects.filter(pk=pk)

    listed: list[Any] = [
        lambda: list(list(one())[0].books.all()),  # noqa: RUF015 (the form under test)
        lambda: [a.profile for a in one().iterator()],
        lambda: [list(b.tags.all()) for b in one()[0].books.filter(pk=book)],  # one-row list
    ]
    single: list[Any] = [
        lambda: list(one().first().books.all()),
        lambda: list(one().last().books.all()),
        lambda: list(one()[0].books.all()),
        lambda: list(one().get().books.all()),
        lambda: one().earliest("pk").profile,
        lambda: list(one()[0].books.get(pk=book).tags.all()),
    ]
    for i, run in enumerate(listed + single):
        with capture() as default, capture(single_lazy_loads=True) as nplusone:
            run()
        assert default.detections == [], (i, default.report())
        kinds = [d.kind for d in nplusone.detections]
        assert kinds == (["n_plus_one"] if i < len(listed) else []), (i, nplusone.report())


def test_rows_fetched_whole_are_let_go_when_the_capture_ends(db: None) -> None:
    # the results a queryset fetched whole wait, untagged, for a lazy load to ask; once
    # the capture (or request) has ended none will, and an idle thread must not keep them
    with capture():
        rows = list(dj_corpus.Author.objects.all())
        kept = [weakref.ref(r) for r in rows]
    del rows
    gc.collect()
    assert kept and all(ref() is None for ref in kept)


def test_rows_fetched_whole_are_let_go_when_the_request_ends(db: None) -> None:
    from pulsegate.engine import PulseGate
    from pulsegate.records import RequestInfo

    gate = PulseGate(log_events=False)
    try:
        ctx = gate.begin(RequestInfo("GET", "/authors", route="/authors"))
        assert ctx is not None
        rows = list(dj_corpus.Author.objects.all())
        kept = [weakref.ref(r) for r in rows]
        gate.finish(ctx, 200)
        del rows
        gc.collect()
        assert kept and all(ref() is None for ref in kept)
    finally:
        gate.close()


def test_templates_parsed_per_request_are_not_kept_alive_by_their_call_sites(
        db: None, tmp_path: Any) -> None:
    """Attack probe (hsec5): a template engine without the cached loader (``loaders``
    set to the filesystem one, as older settings do) parses the page again at each
    render. The node whose tag ran a statement is named by its file and line -- and was
    kept, with its subtree (the loop's body and its 100 kB of text), up to 20 000
    nodes: 300 renders held 30 MB once they had ended. Now no rendered template
    outlives its render, and each statement is still named by its tag."""
    import tracemalloc

    from django.template import Context, Engine
    from django.template.defaulttags import IfNode

    install()
    (tmp_path / "page.html").write_text(
        "{% for book in books %}\n{% if book.author %}" + "x" * 100_000 + "{% endif %}"
        "{% endfor %}")
    engine = Engine(dirs=[str(tmp_path)],
                    loaders=["django.template.loaders.filesystem.Loader"])
    books = list(dj_corpus.Book.objects.all()[:3])
    kept: list[weakref.ref[Any]] = []
    sites: set[str | None] = set()
    tracemalloc.start()
    try:
        for _ in range(300):
            page = engine.get_template("page.html")
            for book in books:  # a lazy relation again at each render
                book._state.fields_cache.clear()
            with capture() as cap:
                page.render(Context({"books": books}))
            sites.update(ev.call_site for ev in cap.queries)
            kept.extend(weakref.ref(node) for node in page.nodelist.get_nodes_by_type(IfNode))
            del page, cap
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert sites == {f"{tmp_path / 'page.html'}:2 in template"}
    assert sum(ref() is not None for ref in kept) <= 1  # (the last render's, at most)
    assert held < 3_000_000, held
