"""The detector on bare events (SQL + timings only, as converted from spans) and on
events carrying ORM knowledge."""

from __future__ import annotations

from pulsegate.queries import NPlusOneDetector, QueryEvent


def ev(sql: str, ms: float = 1.0, site: str | None = "app.py:10 in view", params: int | None = None,
       **kw: object) -> QueryEvent:
    return QueryEvent(sql=sql, duration_ms=ms, call_site=site, params_hash=params,
                      params_count=None if params is None else 1, **kw)  # type: ignore[arg-type]


def test_span_only_events_same_shape_is_an_n_plus_one() -> None:
    events = [ev("SELECT * FROM author", site=None)] + [
        ev(f"SELECT * FROM book WHERE author_id = {i}", site=None) for i in range(6)]
    (d,) = NPlusOneDetector().analyze(events)
    assert d.kind == "n_plus_one" and d.count == 6 and d.call_site is None
    assert d.sql == "select * from book where author_id = ?"
    assert d.share_of_request == round(6 / 7, 4) and d.total_ms == 6.0
    assert d.distinct_params == 6 and 0.5 < d.confidence <= 1


def test_threshold_and_duration_floor() -> None:
    events = [ev("SELECT * FROM book WHERE id = ?", params=i) for i in range(4)]
    assert NPlusOneDetector().analyze(events) == []
    assert len(NPlusOneDetector(min_repeats=4).analyze(events)) == 1
    five = [ev("SELECT * FROM book WHERE id = ?", ms=0.1, params=i) for i in range(5)]
    assert len(NPlusOneDetector().analyze(five)) == 1
    assert NPlusOneDetector(min_duration_ms=50).analyze(five) == []


def test_identical_parameters_make_a_repeated_query() -> None:
    events = [ev("SELECT * FROM setting WHERE key = ?", params=42) for _ in range(5)]
    (d,) = NPlusOneDetector().analyze(events)
    assert d.kind == "repeated_query" and "reuse the result" in d.suggestion
    literal = [ev("SELECT * FROM setting WHERE key = 'x'", site=None) for _ in range(5)]
    assert NPlusOneDetector().analyze(literal)[0].kind == "repeated_query"


def test_different_call_sites_are_not_one_loop() -> None:
    events = [ev("SELECT * FROM author WHERE id = ?", site=f"app.py:{i} in view", params=i)
              for i in range(6)]
    assert NPlusOneDetector().analyze(events) == []


def test_write_loops_but_not_bulk_writes() -> None:
    loop = [ev("INSERT INTO tag (name) VALUES (?)", params=i, orm="django") for i in range(6)]
    (d,) = NPlusOneDetector().analyze(loop)
    assert d.kind == "write_loop" and "bulk_create" in d.suggestion
    many = [ev("INSERT INTO tag (name) VALUES (?)", many=True) for _ in range(6)]
    assert NPlusOneDetector().analyze(many) == []
    multi = [ev("INSERT INTO tag (name) VALUES (?), (?)", params=i) for i in range(6)]
    assert NPlusOneDetector().analyze(multi) == []
    upd = [ev("UPDATE book SET title = ? WHERE id = ?", params=i, orm="sqlalchemy") for i in range(6)]
    assert "session.execute(update(Book)" in NPlusOneDetector().analyze(upd)[0].suggestion


def test_transaction_control_is_ignored() -> None:
    events = [ev(f'SAVEPOINT "s{i}"') for i in range(8)] + [ev("BEGIN") for _ in range(8)]
    assert NPlusOneDetector().analyze(events) == []


def test_relationship_suggestions_are_exact() -> None:
    def rel(name: str, load: str, orm: str) -> list[QueryEvent]:
        return [ev("SELECT * FROM x WHERE y = ?", params=i, relationship=name, load=load, orm=orm)
                for i in range(5)]

    det = NPlusOneDetector()
    assert det.analyze(rel("Author.books", "collection", "sqlalchemy"))[0].suggestion == \
        "options(selectinload(Author.books))"
    assert det.analyze(rel("Book.author", "scalar", "sqlalchemy"))[0].suggestion == \
        "options(joinedload(Book.author))"
    assert det.analyze(rel("Author.books", "collection", "django"))[0].suggestion == \
        'prefetch_related("books")'
    assert det.analyze(rel("Book.author", "scalar", "django"))[0].suggestion == 'select_related("author")'
    assert det.analyze(rel("Author.books", "count", "django"))[0].suggestion == \
        'count in the list query: .annotate(Count("books"))'
    assert "undefer(Book.summary)" in det.analyze(rel("Book.summary", "deferred", "sqlalchemy"))[0].suggestion
    d = det.analyze(rel("Author.books", "collection", "sqlalchemy"))[0]
    assert d.relationship == "Author.books" and "Author.books" in d.describe()


def test_confidence_grows_with_repetition() -> None:
    det = NPlusOneDetector()
    few = det.analyze([ev("SELECT * FROM b WHERE id = ?", params=i) for i in range(5)])[0]
    lots = det.analyze([ev("SELECT * FROM b WHERE id = ?", params=i) for i in range(50)])[0]
    assert lots.confidence > few.confidence


def test_batched_in_loads_are_not_loops() -> None:
    batch = [QueryEvent(sql="SELECT * FROM book WHERE author_id IN (" + ", ".join("?" * 500) + ")",
                        duration_ms=1.0, params_hash=i, params_count=500, call_site="app.py:3 in v")
             for i in range(6)]
    assert NPlusOneDetector().analyze(batch) == []
    small_in = [QueryEvent(sql="SELECT * FROM book WHERE author_id IN (?, ?)", duration_ms=1.0,
                           params_hash=i, params_count=2, call_site="app.py:3 in v") for i in range(6)]
    assert NPlusOneDetector().analyze(small_in)[0].kind == "n_plus_one"
    marked = [ev("SELECT * FROM x WHERE y IN (?)", params=i, relationship="Author.books", load="batch")
              for i in range(6)]
    assert NPlusOneDetector().analyze(marked) == []


def test_min_confidence_filters_weak_detections() -> None:
    events = [ev("SELECT * FROM book WHERE id = ?", params=i, site=None) for i in range(5)]
    det = NPlusOneDetector()
    (d,) = det.analyze(events)
    det.min_confidence = d.confidence + 0.01
    assert det.analyze(events) == []
    det.min_confidence = d.confidence
    assert len(det.analyze(events)) == 1
