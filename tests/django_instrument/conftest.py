"""Django settings are process-global: configure them once unless another test directory
already did (the models below use the app_label of pulsegate.django, which both configurations install)."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).parent))

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="pulsegate-tests", ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "pulsegate.django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, LOGGING_CONFIG=None,
    )
    django.setup()
