"""The WSGI application of the example, its database migrated at start."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.demo.settings")
application = get_wsgi_application()

from .startup import migrate  # noqa: E402  (needs the settings above)

migrate()
