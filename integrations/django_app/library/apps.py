from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


class LibraryConfig(AppConfig):
    name = "library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # At the first request, not here: building the engine in every process (each
        # `manage.py` command too) would make each one a worker of the state store.
        request_started.connect(_install_once, dispatch_uid="library.pulsegate-listener")


def _install_once(**kwargs: Any) -> None:
    from library import views

    request_started.disconnect(dispatch_uid="library.pulsegate-listener")
    views.install_listener()
