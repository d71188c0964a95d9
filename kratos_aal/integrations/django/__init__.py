"""Django: `@require_aal2`, `require_aal(...)`, `AALRequiredMixin`, `KratosSessionMiddleware`.

Templates: the context processor ``kratos_aal.integrations.django.context_processors.kratos``
and the tags of ``{% load kratos_aal %}``; ``page_access(request)`` in Python.

.. code-block:: python

    INSTALLED_APPS = [..., "kratos_aal.integrations.django"]
    MIDDLEWARE = [..., "kratos_aal.integrations.django.KratosSessionMiddleware"]
    KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433", "BROWSER_URL": "https://example.com/kratos"}

Names load on first use, so that listing the app in ``INSTALLED_APPS`` imports nothing
that needs Django's settings or app registry before they are ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conf import override_clients
    from .decorators import require_aal, require_aal2
    from .middleware import KratosSessionMiddleware
    from .mixins import AALRequiredMixin
    from .pages import apage_access, page_access
    from .users import KratosBackend, KratosUserMiddleware

__all__ = [
    "AALRequiredMixin",
    "KratosBackend",
    "KratosSessionMiddleware",
    "KratosUserMiddleware",
    "apage_access",
    "override_clients",
    "page_access",
    "require_aal",
    "require_aal2",
]

_HOMES = {
    "AALRequiredMixin": ".mixins",
    "KratosBackend": ".users",
    "KratosUserMiddleware": ".users",
    "KratosSessionMiddleware": ".middleware",
    "apage_access": ".pages",
    "override_clients": ".conf",
    "page_access": ".pages",
    "require_aal": ".decorators",
    "require_aal2": ".decorators",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
