"""The example project's settings, as the test suite uses them."""

from examples.django_project.demo.settings import *  # noqa: F403

# Linked users need the database: the suite turns them on where it tests them
# (tests/django/test_users.py, tests/drf); `kratos-aal demo` serves the example's own lists.
MIDDLEWARE = [
    m
    for m in MIDDLEWARE  # noqa: F405
    if m != "kratos_aal.integrations.django.KratosUserMiddleware"
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# Django REST framework, the admin and linked users (tests/drf, tests/django/test_users.py).
INSTALLED_APPS = [
    *INSTALLED_APPS,  # noqa: F405
    "django.contrib.admin",
    "django.contrib.messages",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [DEMO_TEMPLATES],  # noqa: F405
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kratos_aal.integrations.django.context_processors.kratos",
            ]
        },
    }
]
