"""pulsegate[django] as installed: the two settings lines, Django's own test Client,
the ORM's N+1 with its fix, and ``manage.py pulsegate report``."""

from __future__ import annotations

import io
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smokesite.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from smoke_common import check_installed, ml_headers  # noqa: E402
from smokesite.models import Author, Book  # noqa: E402

from pulsegate.django import get_gate  # noqa: E402

check_installed()
call_command("migrate", run_syncdb=True, verbosity=0)
for i in range(5):
    author = Author.objects.create(name=f"a{i}")
    Book.objects.bulk_create(Book(title=f"b{i}.{j}", author=author) for j in range(2))

client = Client()
for _ in range(40):
    response = client.get("/authors/")
assert response.status_code == 200
shown = ml_headers(response.headers)
print(shown)
assert int(shown["x-ml-query-count"]) == 6 and int(shown["x-ml-nplusone"]) == 1, shown
gate = get_gate()
assert gate.stats()["requests"] == 40, gate.stats()
out = io.StringIO()
call_command("pulsegate", "report", stdout=out)
report = out.getvalue()
print(report)
assert "GET /authors/" in report and 'prefetch_related("books")' in report, report
print("django smoke: ok")
