"""The pytest plugin sees the N+1 queries of requests the app under test serves inside
a test: Flask's test client and Django's (same thread), Starlette's TestClient (the app
runs in an anyio portal thread). Real ORM hooks, real middleware, a child pytest."""

from __future__ import annotations

import pytest

import pulsegate
from pulsegate.queries import served
from pulsegate.queries.capture import QueryProblemsError

pytest_plugins = ["pytester"]
# The children run in-process and their requests would reach our capture: judge once.
pytestmark = pytest.mark.pulsegate(nplusone="off")

SQLALCHEMY_DB = '''
import sqlalchemy as sa

engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                          connect_args={"check_same_thread": False})
with engine.begin() as c:
    c.execute(sa.text("CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER)"))

def books_one_by_one():
    with engine.connect() as c:
        for author in range(6):
            c.execute(sa.text("SELECT * FROM book WHERE author_id = :a"), {"a": author})

def books_at_once():
    with engine.connect() as c:
        c.execute(sa.text("SELECT * FROM book WHERE author_id IN (0, 1, 2, 3, 4, 5)"))
'''

FLASK_APP = SQLALCHEMY_DB + '''
import flask
import pytest
import pulsegate.flask

app = flask.Flask(__name__)
pulsegate.flask.PulseGate(app)

@app.get("/authors")
def authors():
    books_one_by_one()
    return "ok"

@app.get("/clean")
def clean():
    books_at_once()
    return "ok"

def test_endpoint_with_nplusone():
    assert app.test_client().get("/authors").status_code == 200

def test_clean_endpoint():
    assert app.test_client().get("/clean").status_code == 200
'''

STARLETTE_APP = SQLALCHEMY_DB + '''
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from pulsegate.asgi import PulseGateMiddleware

def authors(request):  # sync: Starlette runs it in a worker thread of the portal's
    books_one_by_one()
    return PlainTextResponse("ok")

async def clean(request):
    books_at_once()
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/authors/{page}", authors), Route("/clean", clean)],
                middleware=[Middleware(PulseGateMiddleware)])

def test_endpoint_with_nplusone():
    with TestClient(app) as client:
        assert client.get("/authors/1").status_code == 200

def test_clean_endpoint():
    with TestClient(app) as client:
        assert client.get("/clean").status_code == 200
'''

DJANGO_CONFTEST = '''
import django
from django.conf import settings

settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="t", ROOT_URLCONF="test_django_app",
    MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"],
    INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True, LOGGING_CONFIG=None)
django.setup()
'''

DJANGO_APP = '''
import pytest
from django.db import connection, models
from django.http import JsonResponse
from django.test import Client
from django.urls import path


class Author(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "pulsegate"  # an installed app


class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)

    class Meta:
        app_label = "pulsegate"


def authors(request):
    return JsonResponse({a.name: [b.title for b in a.books.all()]
                         for a in Author.objects.all()})


def authors_prefetched(request):
    return JsonResponse({a.name: [b.title for b in a.books.all()]
                         for a in Author.objects.prefetch_related("books")})


urlpatterns = [path("authors/", authors), path("prefetched/", authors_prefetched)]


@pytest.fixture(autouse=True)
def two_authors():
    with connection.schema_editor() as editor:
        editor.create_model(Author)
        editor.create_model(Book)
    for name in ("ann", "bob"):  # a fixture of two objects, as in django-zeal's tests
        Book.objects.create(title=name + "'s book", author=Author.objects.create(name=name))
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Book)
        editor.delete_model(Author)


def test_endpoint_with_nplusone():
    assert Client().get("/authors/").status_code == 200


def test_clean_endpoint():
    assert Client().get("/prefetched/").status_code == 200
'''


def _fails_naming_the_request(result: pytest.RunResult, request: str, line: str) -> None:
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_endpoint_with_nplusone*",
        f"*in request {request}: N+1 query: 6 statements*", f"*{line}*",
        "*fix: one query per item*"])
    assert "FAILED *test_clean_endpoint" not in result.stdout.str()


def test_flask_test_client(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flask_app=FLASK_APP)
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    _fails_naming_the_request(result, "GET /authors (path /authors)",
                              "test_flask_app.py:11 in books_one_by_one")


def test_starlette_test_client_in_the_portal_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_starlette_app=STARLETTE_APP)
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    _fails_naming_the_request(result, "GET /authors/{page} (path /authors/1)",
                              "test_starlette_app.py:11 in books_one_by_one")


def test_django_test_client_two_objects(pytester: pytest.Pytester) -> None:
    # Django's settings are process-wide: the child gets a process of its own. Two
    # authors are enough: the structural rule (two loads of Author.books for instances
    # of one multi-row result) applies inside a request as in a capture.
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(test_django_app=DJANGO_APP)
    result = pytester.runpytest_subprocess("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*in request GET /authors/ (path /authors/): N+1 query loading Author.books: "
        "2 statements*", "*test_django_app.py:24 in *",
        '*fix: prefetch_related("books")*'])
    assert "FAILED *test_clean_endpoint" not in result.stdout.str()


def test_policies_and_allow_list_apply_to_served_requests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flask_app=FLASK_APP + '''
@pytest.mark.pulsegate(allow=["*test_flask_app.py:11"])
def test_allowed_call_site():
    app.test_client().get("/authors")

@pytest.mark.pulsegate(nplusone="off")
def test_off():
    app.test_client().get("/authors")
''')
    result = pytester.runpytest("--pulsegate-nplusone=fail", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result = pytester.runpytest("-p", "no:cacheprovider")  # warn, the default
    result.assert_outcomes(passed=4, warnings=1)
    result.stdout.fnmatch_lines(["*PulseGateQueryWarning*", "*in request GET /authors*"])


def _served_app() -> object:
    import flask
    import sqlalchemy as sa

    import pulsegate.flask

    engine = sa.create_engine("sqlite://")
    app = flask.Flask(__name__)
    pulsegate.flask.PulseGate(app)

    @app.get("/loop")
    def loop() -> str:
        with engine.connect() as c:
            for i in range(6):
                c.execute(sa.text("SELECT :i AS book_id"), {"i": i})
        return "ok"

    return app


def test_a_request_counts_only_while_a_watching_capture_is_open() -> None:
    client = _served_app().test_client()  # type: ignore[attr-defined]
    assert served.watchers == ()  # this test is not wrapped (policy off): nobody watches
    with pulsegate.capture() as plain, pulsegate.capture(watch_requests=True) as cap:
        client.get("/loop")
    assert [req for req, _ in cap.served] == ["GET /loop (path /loop)"]
    assert cap.served[0][1].kind == "n_plus_one"
    assert plain.served == [] and plain.query_count == 0
    assert served.watchers == ()
    client.get("/loop")  # after the block: not attributed to it
    assert len(cap.served) == 1
    with pytest.raises(QueryProblemsError, match="in request GET /loop"):
        cap.check()
