"""Django settings are process-global: configure them once (unless another test
directory already did), and let each test pick its urls and middleware with
``override_settings`` so the tests hold whoever configured Django first."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).parent))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="pulsegate-tests",
        ROOT_URLCONF="pg_adapter_urls",
        MIDDLEWARE=["pulsegate.django.PulseGateMiddleware"],
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
