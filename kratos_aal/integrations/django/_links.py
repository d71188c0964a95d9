"""Whether a Django app links Kratos identities to Django users, worked out once.

DRF's authentication asks on every request; the answer holds until Django's
``setting_changed`` names a setting it reads (as ``override_settings`` does).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.signals import setting_changed

_USER_MIDDLEWARES = frozenset(
    {
        "kratos_aal.integrations.django.KratosUserMiddleware",
        "kratos_aal.integrations.django.users.KratosUserMiddleware",
    }
)
#: The settings :func:`links_users` reads; its answer is kept until one of them changes.
_LINK_SETTINGS = frozenset({"MIDDLEWARE", "AUTHENTICATION_BACKENDS", "INSTALLED_APPS"})
_LINKS: list[bool] = []


def links_users() -> bool:
    """Return whether the app links Django users (``KratosBackend`` or ``KratosUserMiddleware``).

    The backend counts however it is listed: its package's name, its module's, or a subclass.
    Worked out once, and again after Django's ``setting_changed`` names a setting it reads
    (as ``override_settings`` does): every authenticated request asks.
    """
    if _LINKS:
        return _LINKS[0]
    if not _USER_MIDDLEWARES.isdisjoint(getattr(settings, "MIDDLEWARE", None) or ()):
        links = True
    elif not apps.is_installed("django.contrib.auth"):
        links = False  # no Django users, and AUTHENTICATION_BACKENDS would not import
    else:
        from . import users

        links = users.listed_backend() is not None
    _LINKS[:] = [links]
    return links


def _forget_links(*, setting: str, **_: Any) -> None:
    if setting in _LINK_SETTINGS:
        _LINKS.clear()


setting_changed.connect(_forget_links)
