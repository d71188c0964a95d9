"""The example project's settings, as the test suite uses them."""

from examples.django_project.demo.settings import *  # noqa: F403

# Django REST framework, the admin and linked users (tests/drf, tests/django/test_users.py).
INSTALLED_APPS = [
    *INSTALLED_APPS,  # noqa: F405
    "django.contrib.admin",
    "django.contrib.messages",
    "rest_framework",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
