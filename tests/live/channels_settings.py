"""Django settings of the Channels app the long-lived connection tests serve under Daphne."""

from __future__ import annotations

import os

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "daphne",
    "channels",
    "kratos_aal.integrations.django",
]
# A file of this process's own (in a folder the test removes when it stops the server):
# Channels reads users on threads of its pool.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["KRATOS_AAL_LIVE_DB"],
    }
}
ROOT_URLCONF = "tests.live.channels_asgi"
ASGI_APPLICATION = "tests.live.channels_asgi.application"
AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
KRATOS_AAL = {
    "PUBLIC_URL": os.environ["KRATOS_PUBLIC_URL"],
    "CACHE_TTL": float(os.environ.get("KRATOS_AAL_CACHE_TTL", "30")),
    "LOCAL_CACHE_TTL": float(os.environ.get("KRATOS_AAL_LOCAL_CACHE_TTL", "5")),
    "CREATE_USERS": False,
    **(
        {
            "CACHE_URL": os.environ["KRATOS_AAL_CACHE_URL"],
            "CACHE_KEY_SECRET": os.environ["KRATOS_AAL_CACHE_KEY_SECRET"],
        }
        if os.environ.get("KRATOS_AAL_CACHE_URL")
        else {}
    ),
}
