"""The link between a Django user and a Kratos identity (for ``KratosBackend``)."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db import models


def users_installed() -> bool:
    """Return whether the app of ``AUTH_USER_MODEL`` is installed (linked users need it)."""
    try:
        apps.get_app_config(settings.AUTH_USER_MODEL.split(".", 1)[0])
    except LookupError:
        return False
    return True


# Projects without django.contrib.auth (or their own user model) keep working: no link table.
if users_installed():

    class KratosIdentityLink(models.Model):
        """One Django user per Kratos identity, and the Kratos session its fields last came from."""

        identity_id = models.CharField(max_length=64, unique=True)
        user = models.OneToOneField(
            settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kratos_identity"
        )
        # Traits are copied to the user once per Kratos session, not on every request.
        session_id = models.CharField(max_length=64, blank=True, default="")

        class Meta:
            verbose_name = "Kratos identity link"

        def __str__(self) -> str:
            return f"{self.user} = Kratos identity {self.identity_id}"
