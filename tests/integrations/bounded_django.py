"""A minimal Django project for the bounded-cost suite: settings, URLs and views in one module.

``/sync/`` and ``/async/`` need aal2 (``require_aal2`` on a sync and an async view);
``/public/`` does not. Served by gunicorn (``wsgi()``) and uvicorn (``asgi()``).
"""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

from kratos_aal.integrations.django import require_aal2
from tests.integrations.bounded_apps import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)

SECRET_KEY = "bounded-cost-suite-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "kratos_aal.integrations.django",
]
MIDDLEWARE = ["kratos_aal.integrations.django.KratosSessionMiddleware"]
KRATOS_AAL = settings() if "KRATOS_URL" in os.environ else {}
ROOT_URLCONF = __name__
DATABASES: dict[str, Any] = {}
USE_TZ = True


@require_aal2
def sync_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("sync")


@require_aal2
async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async")


def public(request: HttpRequest) -> HttpResponse:
    return HttpResponse("public")


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("public/", public),
]


def wsgi() -> Any:
    """Return Django's WSGI handler (gunicorn)."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def asgi() -> Any:
    """Return Django's ASGI handler (uvicorn)."""
    from django.core.asgi import get_asgi_application

    return get_asgi_application()
