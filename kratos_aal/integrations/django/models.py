"""The link between a Django user and a Kratos identity (for ``KratosBackend``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
