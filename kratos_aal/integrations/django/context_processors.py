"""The context processor ``kratos``: the Kratos session and its page in every template.

.. code-block:: python

    TEMPLATES = [{..., "OPTIONS": {"context_processors": [
        ...,
        "kratos_aal.integrations.django.context_processors.kratos",
    ]}}]

``{{ kratos_session }}`` is the request's session (falsy without one); ``{{ kratos }}`` is
its :class:`~kratos_aal.PageAccess` (``{{ kratos.login_url }}``, ``{{ kratos.settings_url }}``;
the ``kratos_aal`` template tags ask the same object). Both are lazy: a template that reads
neither costs nothing.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .pages import lazy_page, page_access

__all__ = ["kratos"]


def kratos(request: HttpRequest) -> dict[str, Any]:
    """Return ``kratos`` (the request's page) and ``kratos_session`` for templates."""
    return {
        "kratos": lazy_page(request),
        "kratos_session": SimpleLazyObject(lambda: page_access(request).session),
    }
