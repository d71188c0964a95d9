"""Create the example's database tables when the app starts."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection


def migrate() -> None:
    """Apply the migrations (the linked users' tables) to the example's sqlite database.

    The database is in memory unless ``DJANGO_DB`` names a file, so every start needs its
    tables; on a file that is already migrated this does nothing.
    """
    call_command("migrate", interactive=False, verbosity=0)
    # An in-memory database lives while one connection to it is open: keep this one.
    connection.ensure_connection()
