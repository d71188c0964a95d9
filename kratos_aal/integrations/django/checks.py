"""System checks: each names the wrong setting and says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from ..._settings import PROTECTED_USER_FIELDS
from ...exceptions import ConfigurationError
from . import conf

MIDDLEWARE = "kratos_aal.integrations.django.KratosSessionMiddleware"
_SECURITY = "django.middleware.security.SecurityMiddleware"
_CORS = "corsheaders.middleware.CorsMiddleware"


@register(Tags.security, "kratos_aal")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """Validate ``KRATOS_AAL`` and where the middleware sits."""
    found: list[Error | Warning] = []
    raw = getattr(settings, conf.SETTING, None)
    if raw is None:
        found.append(
            Error(
                "KRATOS_AAL is not set.",
                hint="Add KRATOS_AAL = {'PUBLIC_URL': 'http://kratos:4433'} to your settings.",
                id="kratos_aal.E001",
            )
        )
    else:
        try:
            conf.read(raw)
        except ConfigurationError as error:
            message = str(error)
            error_id = (
                "kratos_aal.E001" if "'PUBLIC_URL'] is not set" in message else "kratos_aal.E002"
            )
            if "['RULES']" in message:
                error_id = "kratos_aal.E003"
            shared = ("['CACHE']", "['CACHE_URL']", "['CACHE_KEY_SECRET']", "['CACHE_KEY_PREFIX']")
            if any(key in message for key in shared):
                error_id = "kratos_aal.E006"
            found.append(Error(message, hint=_hint(error_id), id=error_id))
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    rules = isinstance(raw, dict) and raw.get("RULES")
    if MIDDLEWARE not in middleware:
        if rules:
            found.append(
                Error(
                    "KRATOS_AAL['RULES'] is set but KratosSessionMiddleware is not in "
                    "MIDDLEWARE, so no rule is enforced.",
                    hint=f"Add '{MIDDLEWARE}' to MIDDLEWARE.",
                    id="kratos_aal.E004",
                )
            )
    elif _SECURITY in middleware and middleware.index(_SECURITY) > middleware.index(MIDDLEWARE):
        found.append(
            Warning(
                "KratosSessionMiddleware comes before SecurityMiddleware: sessions are "
                "checked, and browsers sent to Kratos, before the HTTPS redirect.",
                hint=f"Move '{MIDDLEWARE}' below '{_SECURITY}' in MIDDLEWARE.",
                id="kratos_aal.W001",
            )
        )
    if (
        MIDDLEWARE in middleware
        and _CORS in middleware
        and middleware.index(_CORS) > middleware.index(MIDDLEWARE)
    ):
        found.append(
            Warning(
                "CorsMiddleware comes after KratosSessionMiddleware: a cross-origin "
                "preflight to a protected path is denied before CORS can answer it.",
                hint=f"Move '{_CORS}' above '{MIDDLEWARE}' in MIDDLEWARE.",
                id="kratos_aal.W002",
            )
        )
    return found


def _hint(error_id: str) -> str:
    return {
        "kratos_aal.E001": "Set KRATOS_AAL['PUBLIC_URL'] to the URL this server reaches Kratos.",
        "kratos_aal.E002": "Fix the KRATOS_AAL key named above; URLs are absolute http(s) URLs.",
        "kratos_aal.E003": "Map path globs like '/billing/*' to 'aal1', 'aal2' or a Requirement.",
        "kratos_aal.E006": "Set CACHE to an alias of CACHES, or CACHE_URL to a redis:// URL "
        "(with CACHE_KEY_SECRET, or a SECRET_KEY to derive it from).",
    }[error_id]


USER_MIDDLEWARE = "kratos_aal.integrations.django.KratosUserMiddleware"
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
# The same class under its module's name.
_USER_MODULE_MIDDLEWARE = "kratos_aal.integrations.django.users.KratosUserMiddleware"
_BACKEND = "kratos_aal.integrations.django.KratosBackend"


@register(Tags.security, "kratos_aal")
def check_users(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """Check that ``KratosUserMiddleware`` has what it needs around it."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    listed = [name for name in (USER_MIDDLEWARE, _USER_MODULE_MIDDLEWARE) if name in middleware]
    if not listed:
        return []
    found: list[Error | Warning] = []
    if _AUTH_MIDDLEWARE not in middleware or middleware.index(_AUTH_MIDDLEWARE) > min(
        middleware.index(name) for name in listed
    ):
        found.append(
            Error(
                "KratosUserMiddleware must come after AuthenticationMiddleware, which would "
                "otherwise set request.user again.",
                hint=f"Put '{USER_MIDDLEWARE}' below '{_AUTH_MIDDLEWARE}' in MIDDLEWARE.",
                id="kratos_aal.E005",
            )
        )
    from .users import listed_backend

    try:
        backend = listed_backend()  # a subclass counts
    except ImportError:
        return found  # Django's own login names the path that does not import
    if backend is None:
        found.append(
            Warning(
                "KratosUserMiddleware is in MIDDLEWARE but KratosBackend is not in "
                "AUTHENTICATION_BACKENDS: linked users get no permissions from it.",
                hint=f"Add '{_BACKEND}' to AUTHENTICATION_BACKENDS.",
                id="kratos_aal.W003",
            )
        )
    return found


@register(Tags.security, "kratos_aal")
def check_user_fields(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """Check that each ``USER_FIELDS`` key is a plain field of the user model."""
    raw = getattr(settings, conf.SETTING, None)
    fields = raw.get("USER_FIELDS") if isinstance(raw, Mapping) else None
    if not isinstance(fields, Mapping):
        return []  # absent, or not a dict: check_settings names it
    from .models import user_field_problems, users_installed

    if not users_installed():
        return []  # no user model, so no linked users to fill
    from django.apps import apps

    model = apps.get_model(settings.AUTH_USER_MODEL, require_ready=False)
    # Privilege names are check_settings' (E002): report each mistake once.
    keys = [key for key in fields if isinstance(key, str) and key not in PROTECTED_USER_FIELDS]
    return [
        Error(
            problem,
            hint="Use a field of the user model (mind spaces and case); privileges, the "
            "password and the primary key are the app's to set.",
            id="kratos_aal.E007",
        )
        for problem in user_field_problems(model, keys)
    ]
