"""The structural rule on bare events carrying the ORM's knowledge of where each
instance came from (what the Django and SQLAlchemy hooks stamp)."""

from __future__ import annotations

from pulsegate.queries import NPlusOneDetector, QueryEvent
from pulsegate.queries.events import ResultToken

SQL = "SELECT * FROM book WHERE author_id = ?"


def token(rows: int) -> ResultToken:
    t = ResultToken()
    t.rows = rows
    return t


def lazy(source: tuple[ResultToken, str] | None, site: str = "app.py:7 in view", i: int = 0,
         rel: str = "Author.books", load: str = "collection", orm: str = "django",
         sql: str = SQL) -> QueryEvent:
    return QueryEvent(sql=sql, duration_ms=1.0, params_count=1, params_hash=i, call_site=site,
                      relationship=rel, load=load, orm=orm, source=source)


def test_two_loads_from_one_multi_row_result_are_an_n_plus_one() -> None:
    result = (token(2), "")
    (d,) = NPlusOneDetector().analyze([lazy(result, i=1), lazy(result, i=2)])
    assert (d.kind, d.count, d.relationship) == ("n_plus_one", 2, "Author.books")
    assert d.suggestion == 'prefetch_related("books")' and d.call_site == "app.py:7 in view"


def test_one_load_or_loads_from_different_lines_are_not() -> None:
    result = (token(5), "")
    assert NPlusOneDetector().analyze([lazy(result)]) == []
    assert NPlusOneDetector().analyze([lazy(result, site="app.py:7 in view", i=1),
                                       lazy(result, site="app.py:8 in view", i=2)]) == []


def test_a_streamed_result_counts_its_rows_by_analysis_time() -> None:
    t = ResultToken()
    t.rows = 1  # iterator(chunk_size=1): the first instance's load runs before the second row
    events = [lazy((t, ""), i=1)]
    t.rows = 2
    events.append(lazy((t, ""), i=2))
    assert NPlusOneDetector().analyze(events)[0].kind == "n_plus_one"


def test_single_loads_on_separate_lines_are_exempt_in_a_loop_their_own_kind() -> None:
    separate = [lazy((token(1), ""), site="app.py:7 in view", i=1),
                lazy((token(1), ""), site="app.py:8 in view", i=2)]
    assert NPlusOneDetector().analyze(separate) == []
    loop = [lazy((token(1), ""), i=i) for i in range(3)]
    (d,) = NPlusOneDetector().analyze(loop)
    assert d.kind == "single_load_loop"
    assert 'Author.objects.filter(pk__in=ids).prefetch_related("books")' in d.suggestion
    sa = [lazy((token(1), ""), i=i, orm="sqlalchemy", load="scalar", rel="Book.author")
          for i in range(3)]
    assert "options(joinedload(Book.author))" in NPlusOneDetector().analyze(sa)[0].suggestion


def test_loads_for_instances_of_unknown_origin_count_as_zeal_counts_them() -> None:
    """Objects created by a fixture, or loaded before the capture began, have no
    result tag: two loads of them from one line are an N+1 (django-zeal exempts only
    instances known to be loaded singly); the same instance twice is not."""
    assert NPlusOneDetector().analyze([lazy(None, i=1), lazy(None, i=2)])[0].kind == "n_plus_one"
    assert NPlusOneDetector().analyze([lazy(None, i=1), lazy(None, i=1)]) == []
    spans = [QueryEvent(sql=SQL, duration_ms=1.0, params_hash=i, params_count=1,
                        call_site="app.py:7 in view") for i in range(4)]
    assert NPlusOneDetector().analyze(spans) == []  # no ORM mark: the repeat count (5)


def test_get_per_item_from_one_line_but_not_the_same_get_twice() -> None:
    get = "SELECT * FROM author WHERE id = ? LIMIT ?"
    loop = [lazy(None, i=i, rel="Author.get()", load="get", sql=get) for i in (1, 2)]
    (d,) = NPlusOneDetector().analyze(loop)
    assert d.kind == "n_plus_one" and "Author.objects.in_bulk(ids)" in d.suggestion
    same = [lazy(None, i=1, rel="Author.get()", load="get", sql=get) for _ in range(5)]
    assert [d.kind for d in NPlusOneDetector().analyze(same)] == ["repeated_query"]


def test_fixes_name_the_lookup_path_and_the_relation_kind() -> None:
    joined = (token(2), "author")
    deferred = [lazy(joined, i=i, rel="User.username", load="deferred") for i in (1, 2)]
    assert '"author__username" to .only(' in NPlusOneDetector().analyze(deferred)[0].suggestion
    result = (token(2), "")
    gfk = [lazy(result, i=i, rel="Tag.obj", load="generic") for i in (1, 2)]
    assert NPlusOneDetector().analyze(gfk)[0].suggestion.startswith('prefetch_related("obj")')
    per_instance = [lazy(result, i=i, rel="User.posts", load="prefetch") for i in (1, 2)]
    assert 'prefetch_related_objects(objs, "posts") once' in \
        NPlusOneDetector().analyze(per_instance)[0].suggestion
    batch = [lazy(None, i=i, load="batch") for i in range(8)]
    assert NPlusOneDetector().analyze(batch) == []


def test_single_lazy_loads_option_is_nplusones_rule_by_the_querys_form() -> None:
    """Off by default (django-zeal's rule). With ``single_lazy_loads=True`` one lazy
    relationship load of an instance fetched by a list form is an N+1 even when the
    list had one row (nplusone's ``list(Occupation.objects.all())[0].user``); an instance
    fetched by a single-object form (``get``, ``first``, ``[0]``) is not; counts,
    deferred fields and the like keep the two-load rule (nplusone never sees them)."""
    nplusone = NPlusOneDetector(single_lazy_loads=True)
    for rows in (1, 3):
        listed = [lazy((ResultToken(rows), ""))]
        assert NPlusOneDetector().analyze(listed) == []
        (d,) = nplusone.analyze(listed)
        assert (d.kind, d.count, d.relationship) == ("n_plus_one", 1, "Author.books")
    assert nplusone.analyze([lazy((ResultToken(1, single=True), ""))]) == []
    scalar = [lazy((ResultToken(1), ""), rel="Book.author", load="scalar")]
    assert nplusone.analyze(scalar)[0].suggestion == 'select_related("author")'
    for load in ("count", "deferred", "generic", "prefetch"):
        assert nplusone.analyze([lazy((ResultToken(1), ""), load=load)]) == [], load
    result = (ResultToken(2), "")
    two = [lazy(result, load="deferred", rel="Book.title", i=i) for i in (1, 2)]
    assert nplusone.analyze(two)[0].kind == "n_plus_one"
    singles = [lazy((ResultToken(1, single=True), ""), i=i) for i in range(3)]
    assert [d.kind for d in nplusone.analyze(singles)] == ["single_load_loop"]
