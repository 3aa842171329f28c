"""What a documentation snippet assumes is already there (``setup=NAME`` in its marker):
lines run before the snippet, and lines run after it that check it did its job.

A snippet such as ``app.add_middleware(PulseGateMiddleware)`` needs an ``app``; the
setup provides a small one, and its check sends requests through the result and wants
the ``x-ml-*`` headers, so a snippet that stops working fails the suite."""

from __future__ import annotations

FASTAPI = ('''
from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, int]:
    return {"item": item_id}
''', '''
from fastapi.testclient import TestClient

with TestClient(app) as client:
    for i in range(3):
        response = client.get(f"/items/{i}")
assert "x-ml-predicted-latency-ms" in response.headers, dict(response.headers)
''')

DJANGO_SETTINGS = ('''
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
INSTALLED_APPS = ["django.contrib.contenttypes"]
''', '''
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("hello/", lambda request: HttpResponse("hi"))]
settings.configure(
    MIDDLEWARE=[m for m in MIDDLEWARE if m is not ...],
    INSTALLED_APPS=[a for a in INSTALLED_APPS if a is not ...],
    PULSEGATE=globals().get("PULSEGATE", {}), ROOT_URLCONF="__main__",
    ALLOWED_HOSTS=["testserver"], SECRET_KEY="docs", USE_TZ=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()

from django.core.management import call_command
from django.test import Client

call_command("check")
for _ in range(3):
    response = Client().get("/hello/")
assert "x-ml-predicted-latency-ms" in response.headers, dict(response.headers)
''')

# Django with a configured project and two models (registered under an installed app's
# label, so that no app package is needed) for the ORM snippets.
DJANGO_ORM = ('''
import django
from django.conf import settings

settings.configure(
    MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"],
    INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
    ROOT_URLCONF="__main__", ALLOWED_HOSTS=["testserver"], SECRET_KEY="docs", USE_TZ=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()
from django.db import connection, models


class Author(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "contenttypes"


class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)

    class Meta:
        app_label = "contenttypes"


with connection.schema_editor() as editor:
    editor.create_model(Author)
    editor.create_model(Book)
for i in range(10):
    author = Author.objects.create(name=f"author {i}")
    Book.objects.bulk_create(Book(title=f"book {i}.{j}", author=author) for j in range(3))
urlpatterns: list[object] = []
''', '')

FLASK = ('''
from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello() -> str:
    return "hi"
''', '''
client = app.test_client()
for _ in range(3):
    response = client.get("/hello")
assert "x-ml-predicted-latency-ms" in response.headers, dict(response.headers)
''')

WSGI = ('''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]


application = app


class Router:  # stands for your framework's URL map
    def match(self, path: str) -> str:
        return "/hello"


router = Router()
''', '''
from wsgiref.util import setup_testing_defaults

from pulsegate.wsgi import PulseGateWSGIMiddleware

wrapped = next(v for v in (app, application) if isinstance(v, PulseGateWSGIMiddleware))
for _ in range(3):
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    seen: list[dict[str, str]] = []
    body = wrapped(environ, lambda status, headers, exc_info=None: seen.append(dict(headers)))
    assert b"".join(body) == b"hi"
assert "x-ml-predicted-latency-ms" in seen[-1], seen
''')

GATE = ('''
from pulsegate import PulseGate

gate = PulseGate()
''', '')

SQLALCHEMY_ENGINE = ('''
from sqlalchemy import create_engine

engine = create_engine("sqlite://")
''', '''
from sqlalchemy import text

from pulsegate import capture

with capture() as cap, engine.connect() as conn:
    conn.execute(text("select 1"))
assert cap.query_count == 1, cap.queries
''')

CAPTURE = ('''
from sqlalchemy import create_engine, text

from pulsegate.sqlalchemy import instrument

engine = create_engine("sqlite://")
instrument(engine)


def run_orm_code() -> None:
    with engine.connect() as conn:
        conn.execute(text("select 1"))
''', '''
assert cap.query_count == 1 and cap.detections == []
''')

LIFESPAN = ('''
import asyncio
import contextlib
import os

from pulsegate import PulseGate

os.makedirs("state", exist_ok=True)
gate = PulseGate(state_dir="state")
''', '''
async def serve_and_stop() -> None:
    async with lifespan(None):
        pass

asyncio.run(serve_and_stop())
assert os.listdir("state"), "no snapshot was written"
''')

GUNICORN_PROMETHEUS = ('''
import os
import tempfile

os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
''', '''
class Worker:
    pid = 12345

child_exit(None, Worker())
''')

LOGGING = ('', '''
logging.getLogger("pulsegate").warning("docs check")
''')

SETUPS: dict[str, tuple[str, str]] = {
    "none": ("", ""), "fastapi": FASTAPI, "django-settings": DJANGO_SETTINGS,
    "django-orm": DJANGO_ORM, "flask": FLASK, "wsgi": WSGI, "gate": GATE,
    "sqlalchemy-engine": SQLALCHEMY_ENGINE, "capture": CAPTURE, "lifespan": LIFESPAN,
    "gunicorn-prometheus": GUNICORN_PROMETHEUS, "logging": LOGGING,
}

DJANGO_APPS = ('''
INSTALLED_APPS = ["django.contrib.contenttypes"]
''', '''
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[a for a in INSTALLED_APPS if a is not ...], SECRET_KEY="docs",
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()
from django.db import connection

from pulsegate import capture

with capture() as cap, connection.cursor() as cursor:
    cursor.execute("select 1")
assert cap.query_count == 1, cap.queries
''')
SETUPS["django-apps"] = DJANGO_APPS

# Wagtail is not a dependency: a stand-in for its hooks registry, then a Flask request
# that runs the registered hook as Wagtail's page serving would.
WAGTAIL = ('''
import sys
import types

registered = {}
hooks = types.ModuleType("wagtail.hooks")
hooks.register = lambda name: (lambda fn: registered.setdefault(name, fn))
sys.modules["wagtail"] = types.ModuleType("wagtail")
sys.modules["wagtail"].hooks = hooks
sys.modules["wagtail.hooks"] = hooks
''', '''
from flask import Flask

from pulsegate.flask import PulseGate, get_gate


class BreadPage:
    pass


site = Flask(__name__)


@site.get("/<path:anything>")
def serve(anything: str) -> str:
    registered["before_serve_page"](BreadPage(), None, (), {})
    return "page"


PulseGate(site)
site.test_client().get("/breads/white/")
names = [row["endpoint"] for row in get_gate(site).endpoints()]
assert names == ["GET /wagtail/BreadPage"], names
''')
SETUPS["wagtail"] = WAGTAIL
