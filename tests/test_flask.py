"""The Flask extension: set-up, config, several apps, routes, errors, streaming,
Flask-SQLAlchemy auto-instrumentation and responses byte-identical to the bare app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, abort, stream_with_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pulsegate import Config, ConfigError
from pulsegate.context import Rejection
from pulsegate.engine import PulseGate as Engine
from pulsegate.flask import PulseGate, get_gate
from pulsegate.records import RequestRecord


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/books/<int:book_id>")
    def book(book_id: int) -> dict[str, int]:
        return {"id": book_id}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("view failed")

    @app.get("/teapot")
    def teapot() -> str:
        abort(418)

    @app.get("/stream")
    def stream() -> Response:
        def gen() -> Iterator[str]:
            for i in range(3):
                yield f"line {i}\n"
        return Response(stream_with_context(gen()), mimetype="text/plain")

    @app.route("/echo", methods=["GET", "POST", "PUT", "OPTIONS"])
    def echo() -> Response:
        from flask import request
        return Response(request.get_data(), headers={"X-Len": str(len(request.get_data()))})

    return app


def records_of(app: Flask) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    get_gate(app).listeners.append(lambda record, ctx: records.append(record))
    return records


def test_one_line_setup_headers_and_route_template() -> None:
    app = make_app()
    ext = PulseGate(app)
    records = records_of(app)
    assert isinstance(app.extensions["pulsegate"], Engine)
    r = app.test_client().get("/books/7", buffered=True)
    assert r.status_code == 200 and r.json == {"id": 7}
    assert 0 <= float(r.headers["x-ml-anomaly-score"]) <= 1
    assert r.headers["x-ml-optimization-applied"] == "none"
    assert records[0].route == "/books/<int:book_id>"
    assert records[0].endpoint == "GET /books/<int:book_id>"
    with app.app_context():
        assert ext.gate is app.extensions["pulsegate"]


def test_factory_pattern_several_apps_one_extension_no_app_stored() -> None:
    ext = PulseGate()
    a, b = make_app(), make_app(PULSEGATE_HEADERS="none")
    ext.init_app(a)
    ext.init_app(b)
    assert not any(isinstance(v, Flask) for v in vars(ext).values())
    assert get_gate(a) is not get_gate(b)
    ra = a.test_client().get("/books/1", buffered=True)
    rb = b.test_client().get("/books/1", buffered=True)
    assert "x-ml-model-version" in ra.headers
    assert not any(k.lower().startswith("x-ml-") for k, _ in rb.headers.items())
    assert get_gate(a).stats()["requests"] == 1 and get_gate(b).stats()["requests"] == 1
    with pytest.raises(RuntimeError):
        ext.init_app(a)


def test_config_keys_are_set_by_default_and_validated() -> None:
    app = make_app(PULSEGATE_ALPHA=0.5)
    PulseGate(app, warmup=5)
    assert app.config["PULSEGATE_ALPHA"] == 0.5  # the user's value wins
    assert app.config["PULSEGATE_WARMUP"] == 5  # the extension's keyword default
    assert app.config["PULSEGATE_Z_THRESHOLD"] == Config().z_threshold
    assert get_gate(app).config.alpha == 0.5
    with pytest.raises(ConfigError) as err:
        PulseGate(make_app(PULSEGATE_ALPHA=5))
    assert err.value.key == "alpha"
    with pytest.raises(ConfigError):
        PulseGate(make_app(PULSEGATE_NOT_AN_OPTION=1))


def test_environment_variables_are_read_below_app_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEGATE_DASHBOARD_TOKEN", "from-env-token-0123456789")
    monkeypatch.setenv("PULSEGATE_ALPHA", "0.25")
    monkeypatch.setenv("PULSEGATE_WARMUP", "7")
    app = make_app(PULSEGATE_ALPHA=0.5)
    PulseGate(app, warmup=5)
    gate = get_gate(app)
    assert gate.config.dashboard_token == "from-env-token-0123456789"
    assert gate.config.alpha == 0.5  # app.config wins over the environment
    assert gate.config.warmup == 5  # and so does the extension's keyword
    monkeypatch.setenv("PULSEGATE_ALPHA", "7")
    with pytest.raises(ConfigError) as err:
        PulseGate(make_app())
    assert err.value.key == "alpha"


def test_set_endpoint_from_a_before_request_hook() -> None:
    from flask import request

    import pulsegate

    app = Flask(__name__)

    @app.before_request
    def name_page() -> None:  # where a CMS knows the page type
        pulsegate.set_endpoint("/pages/" + request.path.strip("/").split("/")[0])

    @app.get("/<path:anything>")
    def page(anything: str) -> str:
        return anything

    PulseGate(app)
    seen: list[str | None] = []
    get_gate(app).listeners.append(lambda record, ctx: seen.append(record.route))
    client = app.test_client()
    for path in ("/breads/rye", "/blog/one"):
        assert client.get(path).status_code == 200
    assert seen == ["/pages/breads", "/pages/blog"]


def test_shared_gate() -> None:
    gate = Engine()
    app = make_app()
    PulseGate(app, gate=gate)
    app.test_client().get("/books/3", buffered=True)
    assert gate.stats()["requests"] == 1


def test_404_500_and_aborts_are_recorded() -> None:
    app = make_app()
    PulseGate(app)
    records = records_of(app)
    client = app.test_client()
    assert client.get("/nowhere/at/all", buffered=True).status_code == 404
    r = client.get("/boom", buffered=True)
    assert r.status_code == 500 and "x-ml-model-version" in r.headers
    assert client.get("/teapot", buffered=True).status_code == 418
    assert [(x.route, x.status) for x in records] == [
        ("UNMATCHED", 404), ("/boom", 500), ("/teapot", 418)]


def test_a_views_exception_is_recorded_with_its_name_as_django_records_it() -> None:
    # Flask turns the exception into its 500 page itself: the middleware never sees it,
    # only the got_request_exception signal does.
    app = make_app()

    @app.get("/lookup")
    def lookup() -> str:
        return {"a": "b"}["missing"]

    PulseGate(app)
    records = records_of(app)
    client = app.test_client()
    assert client.get("/lookup", buffered=True).status_code == 500
    assert client.get("/books/1", buffered=True).status_code == 200
    assert [(x.route, x.status, x.error) for x in records] == [
        ("/lookup", 500, "KeyError"), ("/books/<int:book_id>", 200, None)]


def test_before_request_answering_early_still_has_the_route() -> None:
    app = make_app()

    @app.before_request
    def deny() -> tuple[str, int]:
        return "denied", 403

    PulseGate(app)
    records = records_of(app)
    r = app.test_client().get("/books/9", buffered=True)
    assert r.status_code == 403 and r.data == b"denied"
    assert records[0].route == "/books/<int:book_id>" and records[0].status == 403


def test_streaming_response_finishes_after_last_chunk() -> None:
    app = make_app()
    PulseGate(app)
    records = records_of(app)
    r = app.test_client().get("/stream", buffered=True)
    assert r.data == b"line 0\nline 1\nline 2\n"
    assert records[0].route == "/stream" and records[0].duration_ms >= records[0].ttfb_ms


def serve(app: Flask, path: str) -> Any:
    """One request as a WSGI server makes it: call, iterate the body, close it; returns
    the body object the server got."""
    from werkzeug.test import create_environ

    result = app.wsgi_app(create_environ(path), lambda status, headers, exc=None: None)
    try:
        b"".join(result)
    finally:
        result.close()
    return result


def test_a_buffered_response_is_finished_as_flask_returns_it_and_closed_as_before() -> None:
    # A view's string/JSON/template response is a list inside werkzeug's ClosingIterator:
    # the request ends as Flask returns it, the server gets werkzeug's own iterable and
    # its close (the response's call_on_close callbacks) runs once, as without pulsegate.
    app = make_app()
    PulseGate(app)
    records = records_of(app)
    seen: list[int] = []

    @app.get("/closing")
    def closing() -> Response:
        response = Response("done")
        response.call_on_close(lambda: seen.append(len(records)))
        return response

    result = serve(app, "/closing")
    assert type(result).__name__ == "ClosingIterator"  # werkzeug's, not wrapped
    assert seen == [1]  # the request was already learned when the server closed it
    assert len(records) == 1 and records[0].status == 200 and records[0].route == "/closing"


def test_a_streamed_response_is_still_measured_to_its_last_chunk_and_its_error_recorded(
) -> None:
    app = make_app()
    PulseGate(app)
    records = records_of(app)
    finished_at: list[int] = []

    @app.get("/slow-stream")
    def slow_stream() -> Response:
        def gen() -> Iterator[str]:
            yield "a"
            finished_at.append(len(records))  # not finished while still streaming
            yield "b"
        return Response(gen())

    @app.get("/broken-stream")
    def broken_stream() -> Response:
        def gen() -> Iterator[str]:
            yield "a"
            raise ValueError("mid-stream")
        return Response(gen())

    serve(app, "/slow-stream")
    assert finished_at == [0] and len(records) == 1 and records[0].status == 200
    with pytest.raises(ValueError):
        serve(app, "/broken-stream")
    assert len(records) == 2 and records[1].status == 500 and records[1].error == "ValueError"


def test_rejection_from_admit_becomes_the_response() -> None:
    app = make_app()
    PulseGate(app)
    get_gate(app).control = object()  # admission is asked only when control exists
    get_gate(app).admit = lambda ctx: Rejection(  # type: ignore[method-assign]
        503, "shed", [("retry-after", "1")], b"overloaded\n")
    r = app.test_client().get("/books/1", buffered=True)
    assert r.status_code == 503 and r.data == b"overloaded\n"
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-ml-optimization-applied"] == "none"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT"])
def test_response_byte_identical_to_bare_app_except_added_headers(method: str) -> None:
    bare, gated = make_app(), make_app()
    PulseGate(gated)
    kwargs: dict[str, Any] = {"data": b"x" * 70_000, "headers": {"X-Long": "y" * 8000}}
    rb = bare.test_client().open("/echo", method=method, buffered=True, **kwargs)
    rg = gated.test_client().open("/echo", method=method, buffered=True, **kwargs)
    assert rg.status_code == rb.status_code
    assert rg.get_data() == rb.get_data()
    extra = [(k, v) for k, v in rg.headers.items() if not k.lower().startswith("x-ml-")]
    assert extra == list(rb.headers.items())


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


@pytest.mark.parametrize("order", ["sqlalchemy_first", "pulsegate_first"])
def test_flask_sqlalchemy_engines_are_instrumented(order: str) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db = SQLAlchemy(model_class=Base)
    if order == "sqlalchemy_first":
        db.init_app(app)
        PulseGate(app)
    else:
        PulseGate(app)
        db.init_app(app)

    @app.get("/authors")
    def authors() -> dict[str, list[int]]:
        rows = db.session.scalars(select(Author)).all()  # 1 query
        return {"counts": [len(a.books) for a in rows]}  # + 1 per author (lazy)

    with app.app_context():
        db.create_all()
        for i in range(3):
            db.session.add(Author(name=f"a{i}", books=[Book(title="t")]))
        db.session.commit()
    r = app.test_client().get("/authors", buffered=True)
    assert r.json == {"counts": [1, 1, 1]}
    assert r.headers["x-ml-query-count"] == "4"


def test_dashboard_and_metrics_served_not_measured() -> None:
    app = make_app(PULSEGATE_DASHBOARD=True, PULSEGATE_DASHBOARD_TOKEN="t",
                   PULSEGATE_PROMETHEUS=True)
    PulseGate(app)
    gate = get_gate(app)
    records = records_of(app)
    client = app.test_client()
    r = client.get("/_pulsegate/", buffered=True)
    assert r.status_code == 401 and b"token" in r.data
    r = client.get("/_pulsegate/", buffered=True, headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.mimetype == "text/html" and b"<html" in r.data
    assert "content-security-policy" in r.headers and "x-ml-model-version" not in r.headers
    assert client.get("/books/1", buffered=True).status_code == 200  # measured
    r = client.get("/_pulsegate/api/summary", buffered=True,
                   headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.json is not None and r.json["stats"]["requests"] == 1
    assert client.get("/_pulsegate/api/summary", buffered=True).status_code == 401
    r = client.get("/_pulsegate/metrics", buffered=True)
    assert r.status_code == 200 and r.mimetype == "text/plain" and b"pulsegate_" in r.data
    assert gate.stats()["requests"] == 1 and len(records) == 1


def test_dashboard_off_is_the_apps_404() -> None:
    app = make_app()
    PulseGate(app)
    records = records_of(app)
    r = app.test_client().get("/_pulsegate/", buffered=True,
                              headers={"Authorization": "Bearer t"})
    assert r.status_code == 404 and "x-ml-model-version" in r.headers
    assert get_gate(app).stats()["requests"] == 1 and records[0].status == 404


def test_the_test_client_without_buffered_is_learned_once_per_request() -> None:
    # Flask's test client reads the body but never closes the response: the end of the
    # body finishes the request (issue 20, problem 4).
    app = make_app()
    PulseGate(app, warmup=5)
    records = records_of(app)
    client = app.test_client()
    for i in range(150):
        assert client.get(f"/books/{i}").status_code == 200
    stream = client.get("/stream")
    assert stream.data == b"line 0\nline 1\nline 2\n"
    gate = get_gate(app)
    assert gate.stats()["requests"] == 151 and len(records) == 151
    last = client.get("/books/1")
    assert float(last.headers["x-ml-predicted-latency-ms"]) > 0
    assert int(last.headers["x-ml-prediction-confidence"]) > 0
    last.close()  # a close after the end finishes nothing twice
    assert gate.stats()["requests"] == 152
