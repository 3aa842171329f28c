"""Settings of the Django smoke site: a new project's, plus the two pulsegate lines."""

SECRET_KEY = "smoke-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
ROOT_URLCONF = "smokesite.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "smokesite"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

# pulsegate: the README's lines
MIDDLEWARE = ["pulsegate.django.PulseGateMiddleware", *MIDDLEWARE]
INSTALLED_APPS += ["pulsegate.django"]
