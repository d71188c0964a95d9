#!/usr/bin/env python
"""Run the Django example against ``kratos-aal fake``, in two terminals:

    kratos-aal fake --port 4433 --app-url http://127.0.0.1:8000
    KRATOS_PUBLIC_URL=http://127.0.0.1:4433 python examples/django_project/manage.py runserver 8000

or against your own Kratos, with KRATOS_PUBLIC_URL pointing at its public API.

The database (the Django users linked to Kratos identities) is sqlite in memory, migrated
when the app starts, so runserver's note about unapplied migrations can be ignored; set
DJANGO_DB=path/to/db.sqlite3 to keep the users between runs.
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The project lives in the `examples` package (its pages are shared with the others).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
