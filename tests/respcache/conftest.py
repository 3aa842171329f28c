"""Django settings are process-global: configure them once (unless another test
directory already did); the Django tests here pick their urls with
``override_settings``."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).parent))

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="pulsegate-tests",
        ROOT_URLCONF="cache_django_urls", MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"],
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, LOGGING_CONFIG=None)
    django.setup()
