"""The pages ``real_pages.py`` measures: one list page per framework whose template reads a
lazily loaded relation for every row (the N+1 a real app has), and its clean variant
(the relation loaded with the list: one statement). Each stack gets its own app and its
own database, built the same way:

* Flask + SQLAlchemy ORM + a Jinja template file (``{{ post.author.name }}`` in a loop);
* Django ORM + a Django template file (``{{ book.author.name }}`` in a loop);
* FastAPI + SQLAlchemy ORM through a small service layer, JSON out.

A stack is ``bare``, ``otel`` (what an OpenTelemetry user installs for the framework and,
where OpenTelemetry has one, the database) or ``pulsegate`` (its adapter and ORM hook).
The pulsegate stacks instrument their own SQLAlchemy engine only, so the bare and otel
stacks run none of pulsegate's code. Django's ORM hooks are process-wide (one
``install()``): the Django bare and otel stacks pass through pulsegate's idle check
(one ContextVar read a statement), which slightly flatters pulsegate's Django figures.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

TEMPLATES = tempfile.mkdtemp(prefix="pulsegate-real-pages-")
JINJA_PAGE = """<ul>
{% for post in posts %}
  <li>{{ post.title }}
    by {{ post.author.name }}</li>
{% endfor %}
</ul>
"""
DJANGO_PAGE = """<ul>
{% for book in books %}
  <li>{{ book.title }}
    by {{ book.author.name }}</li>
{% endfor %}
</ul>
"""
for name, body in (("posts.html", JINJA_PAGE), ("books.html", DJANGO_PAGE)):
    with open(os.path.join(TEMPLATES, name), "w") as fh:
        fh.write(body)

settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="bench", ROOT_URLCONF="real_apps",
    MIDDLEWARE=[], INSTALLED_APPS=["django.contrib.contenttypes"], USE_TZ=True,
    LOGGING_CONFIG=None,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [TEMPLATES]}])
django.setup()

from django.db import connection, models  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402
from sqlalchemy import ForeignKey, String, create_engine, select  # noqa: E402
from sqlalchemy.orm import (  # noqa: E402
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
)
from sqlalchemy.pool import StaticPool  # noqa: E402

MAX_ROWS = 50


# --- SQLAlchemy models (Flask and FastAPI pages) -------------------------------------

class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Post(Base):
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship()


def sa_engine() -> Any:
    """An in-memory SQLite database with one author per post (every lazy load runs)."""
    engine = create_engine("sqlite://", poolclass=StaticPool,
                           connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(Author(id=i, name=f"author {i}") for i in range(MAX_ROWS))
        s.add_all(Post(id=i, title=f"post {i}", author_id=i) for i in range(MAX_ROWS))
        s.commit()
    return engine


class PostService:
    """The service layer a FastAPI app puts between its routes and the ORM."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def latest(self, rows: int, eager: bool) -> list[Post]:
        stmt = select(Post).order_by(Post.id).limit(rows)
        if eager:
            stmt = stmt.options(joinedload(Post.author))
        return list(self.session.scalars(stmt))

    def summaries(self, rows: int, eager: bool) -> list[dict[str, str]]:
        return [{"title": p.title, "author": p.author.name} for p in self.latest(rows, eager)]


def flask_app(stack: str) -> tuple[Any, Any]:
    """(WSGI app, engine): ``/posts?rows=N[&eager=1]`` renders posts.html."""
    from flask import Flask, render_template, request

    engine = sa_engine()
    app = Flask(__name__, template_folder=TEMPLATES)

    @app.get("/posts")
    def posts() -> str:
        rows = int(request.args.get("rows", "25"))
        with Session(engine) as s:
            return render_template("posts.html", posts=PostService(s).latest(
                rows, bool(request.args.get("eager"))))

    if stack == "otel":
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
            app, tracer_provider=otel_provider())
        instrument_otel_sqlalchemy(engine)
    elif stack == "pulsegate":
        from pulsegate.flask import PulseGate
        from pulsegate.sqlalchemy import instrument

        # Its own engine only: by default the middleware instruments every engine in the
        # process (``instrument_sqlalchemy=True``), the bare and otel stacks' included,
        # which would put pulsegate's idle hook into their baseline.
        PulseGate(app, instrument_sqlalchemy=False)
        instrument(engine)
    return app, engine


def fastapi_app(stack: str) -> tuple[Any, Any]:
    """(ASGI app, engine): ``/posts?rows=N[&eager=1]`` returns JSON from the service."""
    from fastapi import APIRouter, FastAPI

    engine = sa_engine()
    router = APIRouter()

    @router.get("/posts")
    def posts(rows: int = 25, eager: bool = False) -> list[dict[str, str]]:
        with Session(engine) as s:
            return PostService(s).summaries(rows, eager)

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    if stack == "otel":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.add_middleware(OpenTelemetryMiddleware, tracer_provider=otel_provider())
        instrument_otel_sqlalchemy(engine)
    elif stack == "pulsegate":
        from pulsegate.asgi import PulseGateMiddleware
        from pulsegate.engine import PulseGate
        from pulsegate.sqlalchemy import instrument

        app.add_middleware(PulseGateMiddleware,  # type: ignore[arg-type]
                           gate=PulseGate(instrument_sqlalchemy=False))  # (see flask_app)
        instrument(engine)
    return app, engine


_PROVIDER: list[Any] = []


def otel_provider() -> Any:
    from _common import discarding_tracer_provider

    if not _PROVIDER:
        _PROVIDER.append(discarding_tracer_provider())
    return _PROVIDER[0]


_OTEL_ENGINES: list[Any] = []


def instrument_otel_sqlalchemy(engine: Any) -> None:
    """OpenTelemetry's SQLAlchemy instrumentation on ``engine``. It declares support for
    SQLAlchemy < 2.1 and instruments nothing on 2.1 unless told to skip that check; its
    engine listeners then run as on 2.0 (one span per statement), which is what a user
    pinned to 2.0 pays."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter
    from opentelemetry.trace import get_tracer

    # What SQLAlchemyInstrumentor().instrument(engine=...) builds for an engine (its
    # tracer, and a connection-usage counter on the global, here no-op, meter); built
    # directly, so each engine gets its own, unaffected by the instrumentor's singleton.
    tracer = get_tracer("opentelemetry.instrumentation.sqlalchemy",
                        tracer_provider=otel_provider())
    usage = get_meter("opentelemetry.instrumentation.sqlalchemy").create_up_down_counter(
        name="db.client.connections.usage", unit="connections")
    _OTEL_ENGINES.append(EngineTracer(tracer, engine, usage))  # type: ignore[no-untyped-call]


# --- Django ---------------------------------------------------------------------------

class DjAuthor(models.Model):
    name: models.CharField[str, str] = models.CharField(max_length=40)

    class Meta:
        app_label = "bench"


class DjBook(models.Model):
    title: models.CharField[str, str] = models.CharField(max_length=80)
    author: models.ForeignKey[DjAuthor, DjAuthor] = models.ForeignKey(
        DjAuthor, on_delete=models.CASCADE)

    class Meta:
        app_label = "bench"


def books(request: HttpRequest) -> HttpResponse:
    rows = int(request.GET.get("rows", "25"))
    qs = DjBook.objects.order_by("id")
    if request.GET.get("eager"):
        qs = qs.select_related("author")
    return render(request, "books.html", {"books": qs[:rows]})


urlpatterns = [path("books/", books)]


def django_setup_db() -> None:
    with connection.schema_editor() as editor:
        editor.create_model(DjAuthor)
        editor.create_model(DjBook)
    DjAuthor.objects.bulk_create(DjAuthor(id=i, name=f"author {i}") for i in range(MAX_ROWS))
    DjBook.objects.bulk_create(DjBook(id=i, title=f"book {i}", author_id=i)
                               for i in range(MAX_ROWS))


def django_app(stack: str) -> Any:
    """A WSGI handler with the stack's middleware (built while the settings name it)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    if stack == "pulsegate":
        from pulsegate.django.instrument import install

        install()
        with override_settings(MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"]):
            return WSGIHandler()
    if stack == "otel":
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        # The instrumentor inserts its middleware into settings.MIDDLEWARE; the handler
        # built now has it, the others were built before.
        DjangoInstrumentor().instrument(tracer_provider=otel_provider())
        try:
            return WSGIHandler()
        finally:
            DjangoInstrumentor().uninstrument()
    return WSGIHandler()


FAMILIES: dict[str, Callable[[str], Any]] = {
    "flask": lambda stack: flask_app(stack)[0],
    "django": django_app,
    "fastapi": lambda stack: fastapi_app(stack)[0],
}
