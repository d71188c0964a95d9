"""System checks: each names the wrong setting and says how to fix it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

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
    }[error_id]
