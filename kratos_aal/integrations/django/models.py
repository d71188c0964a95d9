"""The link between a Django user and a Kratos identity (for ``KratosBackend``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from ..._settings import PROTECTED_USER_FIELDS


def users_installed() -> bool:
    """Return whether the app of ``AUTH_USER_MODEL`` is installed (linked users need it)."""
    try:
        apps.get_app_config(settings.AUTH_USER_MODEL.split(".", 1)[0])
    except LookupError:
        return False
    return True


def user_field_problems(model: Any, keys: Iterable[str]) -> list[str]:
    """Return what is wrong with these ``USER_FIELDS`` keys for *model*, one message each.

    A key must name a plain field of the user model (a column, not a relation), and not
    one the app decides (privileges, the password, the primary key).
    """
    meta = model._meta
    plain = [
        field.name
        for field in meta.get_fields()
        if field.concrete
        and not field.is_relation
        and not field.primary_key
        and field.name not in PROTECTED_USER_FIELDS
    ]
    problems = []
    for key in keys:
        name = f"KRATOS_AAL['USER_FIELDS'][{key!r}]"
        try:
            field = meta.get_field(key)
        except FieldDoesNotExist:
            close = difflib.get_close_matches(key, plain, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; its fields are {', '.join(plain)}"
            )
            problems.append(f"{name}: {meta.label} has no field {key!r}{hint}")
            continue
        if getattr(field, "primary_key", False):  # reverse relations have no such attribute
            problems.append(
                f"{name}: {key} is {meta.label}'s primary key, the app's to set, "
                "never copied from traits"
            )
        elif key in PROTECTED_USER_FIELDS:
            problems.append(f"{name}: {key} is the app's to set, never copied from traits")
        elif field.is_relation or not field.concrete:
            problems.append(
                f"{name}: {meta.label}.{key} is a relation; USER_FIELDS copies trait values "
                "into plain fields (text, numbers)"
            )
    return problems


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
