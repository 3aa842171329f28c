"""Settings of the pulsegate reference project. The pulsegate part is three lines:
the app, the middleware (first, so it measures the whole stack) and PULSEGATE."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "reference-app-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "library",
    "pulsegate.django",  # <- pulsegate: query hooks, system check, manage.py pulsegate
]

MIDDLEWARE = [
    "pulsegate.django.PulseGateMiddleware",  # <- pulsegate
    "django.middleware.common.CommonMiddleware",
]

# <- pulsegate options (same keys as pulsegate.Config); validated by `manage.py check`.
PULSEGATE: dict[str, object] = {
    "exclude_paths": ["/health"],
}
# This reference project also takes PULSEGATE_<OPTION> environment variables.
PULSEGATE.update({k[len("PULSEGATE_"):].lower(): v for k, v in os.environ.items()
                  if k.startswith("PULSEGATE_") and k != "PULSEGATE_INSTALL_SERVICES"})

TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

ROOT_URLCONF = "bookshop.urls"
WSGI_APPLICATION = "bookshop.wsgi.application"
ASGI_APPLICATION = "bookshop.asgi.application"


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
                "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    name = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else os.path.join(
        tempfile.gettempdir(), "pulsegate_django_app.sqlite3")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
