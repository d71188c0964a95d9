"""The Django app ``kratos_aal`` (``"kratos_aal.integrations.django"`` in INSTALLED_APPS)."""

from __future__ import annotations

from django.apps import AppConfig


class KratosAALConfig(AppConfig):
    name = "kratos_aal.integrations.django"
    label = "kratos_aal"
    default_auto_field = "django.db.models.BigAutoField"  # what the migration was made with
    verbose_name = "Ory Kratos AAL"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
