#!/usr/bin/env python
"""Run the example: ``python examples/django_project/manage.py runserver 8000``.

It expects Kratos (or `kratos-aal demo`'s FakeKratos) at KRATOS_PUBLIC_URL,
http://127.0.0.1:4433 by default.
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
