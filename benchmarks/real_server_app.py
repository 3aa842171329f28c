"""The page ``real_server.py`` serves: ``REAL_FAMILY`` (flask, django, fastapi) under the
stack ``REAL_STACK`` (bare, otel, pulsegate), built from ``real_apps`` in the worker."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_apps

logging.disable(logging.WARNING)  # pulsegate logs the N+1 it finds: not measured
if os.environ["REAL_FAMILY"] == "django":
    real_apps.django_setup_db()
application = real_apps.FAMILIES[os.environ["REAL_FAMILY"]](os.environ["REAL_STACK"])
