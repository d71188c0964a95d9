"""Settings of the example project: kratos-aal beside django.contrib.auth and DRF.

Kratos identities become Django users (``KratosUserMiddleware`` + ``KratosBackend``), so
``request.user``, ``@login_required`` and ``@permission_required`` work; the DRF views
under ``/api/`` use ``KratosAuthentication`` and the AAL permissions.
"""

from __future__ import annotations

import os
from pathlib import Path

from kratos_aal import Requirement

# As `django-admin startproject` writes it: fine on a laptop, never in production.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-iq&sia($=5i2$k_8l6#vyd&^_chr+q9nx4_=qoj&6s4c6pp5h1"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",  # the browsable API's styles and scripts
    "rest_framework",  # the `drf` extra
    "kratos_aal.integrations.django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user is the Django user linked to the Kratos session's identity.
    "kratos_aal.integrations.django.KratosUserMiddleware",
    # Django's own login wall stays for everything Kratos does not guard.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "kratos_aal.integrations.django.KratosSessionMiddleware",
]

KRATOS_AAL = {
    "PUBLIC_URL": os.environ.get("KRATOS_PUBLIC_URL", "http://127.0.0.1:4433"),
    "BROWSER_URL": os.environ.get("KRATOS_BROWSER_URL") or None,
    "CACHE_TTL": 30,
    # A Django user is created the first time an identity signs in; its email follows Kratos.
    "CREATE_USERS": True,
    "USER_FIELDS": {"email": "email"},
    "RULES": {
        "/account/*": "aal1",
        "/reports/*": Requirement("aal2", max_age=600),
    },
}

# Set by `kratos-aal demo`: where the home page's "move Kratos's clock" button posts.
KRATOS_DEMO_CLOCK_URL: str | None = None

AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]

ROOT_URLCONF = f"{__package__}.urls"
WSGI_APPLICATION = f"{__package__}.wsgi.application"  # runserver migrates at start
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
# In memory by default, migrated when the app starts (demo/startup.py): the linked users
# last as long as the process. DJANGO_DB=path/to/file.sqlite3 keeps them between runs.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB") or "file:kratos-aal-example?mode=memory&cache=shared",
    }
}
USE_TZ = True
# @login_required and Django's login wall send people to Kratos's login, through the library.
LOGIN_URL = "/login/"
# runserver serves them (as `kratos-aal demo` does); behind a real server, collectstatic.
STATIC_URL = "static/"
# The example's own templates (the Account page's bank details).
DEMO_TEMPLATES = Path(__file__).resolve().parent / "templates"
# DRF's browsable API renders templates; the example's ask what the Kratos session allows
# ({% load kratos_aal %}), and every template gets kratos_session (the context processor).
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [DEMO_TEMPLATES],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "kratos_aal.integrations.django.context_processors.kratos",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
