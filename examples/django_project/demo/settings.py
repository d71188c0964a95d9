"""Settings of the example project: kratos-aal beside django.contrib.auth."""

from __future__ import annotations

import os

from kratos_aal import Requirement

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "kratos-aal-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "kratos_aal.integrations.django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's own login wall stays for everything Kratos does not guard.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "kratos_aal.integrations.django.KratosSessionMiddleware",
]

KRATOS_AAL = {
    "PUBLIC_URL": os.environ.get("KRATOS_PUBLIC_URL", "http://127.0.0.1:4433"),
    "BROWSER_URL": os.environ.get("KRATOS_BROWSER_URL") or None,
    "CACHE_TTL": 30,
    "RULES": {
        "/account/*": "aal1",
        "/reports/*": Requirement("aal2", max_age=600),
    },
}

# Set by `kratos-aal demo`: where the home page's "move Kratos's clock" button posts.
KRATOS_DEMO_CLOCK_URL: str | None = None

ROOT_URLCONF = f"{__package__}.urls"
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
# Django's login wall sends people to a view that kratos-aal guards: Kratos's login page.
LOGIN_URL = "/login/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
