"""Create the Kratos identity link table."""

from __future__ import annotations

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from ..models import users_installed


class Migration(migrations.Migration):
    initial = True

    # Without a user model installed there is nothing to link (and nothing to depend on).
    dependencies = (
        [migrations.swappable_dependency(settings.AUTH_USER_MODEL)] if users_installed() else []
    )

    operations = (
        []
        if not users_installed()
        else [
            migrations.CreateModel(
                name="KratosIdentityLink",
                fields=[
                    (
                        "id",
                        models.BigAutoField(
                            auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                        ),
                    ),
                    ("identity_id", models.CharField(max_length=64, unique=True)),
                    ("session_id", models.CharField(blank=True, default="", max_length=64)),
                    (
                        "user",
                        models.OneToOneField(
                            on_delete=django.db.models.deletion.CASCADE,
                            related_name="kratos_identity",
                            to=settings.AUTH_USER_MODEL,
                        ),
                    ),
                ],
                options={"verbose_name": "Kratos identity link"},
            ),
        ]
    )
