"""The ``KRATOS_AAL`` settings dict that Django and Flask share, validated without a framework."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import CONFIG_FIELDS, KratosConfig
from ._web import PathRules
from .exceptions import ConfigurationError

__all__ = ["COMMON_KEYS", "KEYS", "USER_KEYS", "Settings", "read"]

#: One upper-case key per KratosConfig field.
KEYS = {name.upper(): name for name in CONFIG_FIELDS}
#: Every framework's keys: the KratosConfig fields and RULES.
COMMON_KEYS = (*KEYS, "RULES")
#: Django's linked users only.
USER_KEYS = ("CREATE_USERS", "USER_FIELDS")
#: User fields USER_FIELDS may not fill from traits: who is staff or a superuser, and how
#: the user signs in, are the app's to decide, never an identity's own traits.
PROTECTED_USER_FIELDS = frozenset(
    {
        "id",
        "pk",
        "password",
        "is_superuser",
        "is_staff",
        "is_active",
        "last_login",
        "groups",
        "user_permissions",
        "date_joined",
    }
)


@dataclass(frozen=True)
class Settings:
    """A ``KRATOS_AAL`` dict, validated."""

    config: KratosConfig
    rules: PathRules
    create_users: bool = True
    user_fields: Mapping[str, str] = field(default_factory=dict)


def read(raw: Any, *, setting: str = "KRATOS_AAL", users: bool = False) -> Settings:
    """Validate a ``KRATOS_AAL`` dict; *setting* is how messages name it.

    Args:
        raw: The dict.
        setting: Its name in messages, e.g. ``app.config['KRATOS_AAL']``.
        users: Whether ``CREATE_USERS`` and ``USER_FIELDS`` are keys (Django only).

    Raises:
        ConfigurationError: a key is missing, unknown or wrong; the message names it.
    """
    if raw is None:
        raise ConfigurationError(
            f"{setting} is not set: set it to a dict such as {{'PUBLIC_URL': 'http://kratos:4433'}}"
        )
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"{setting} must be a dict such as {{'PUBLIC_URL': 'http://kratos:4433'}}"
        )
    known = (*COMMON_KEYS, *USER_KEYS) if users else COMMON_KEYS
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; the keys are {', '.join(known)}"
            )
            raise ConfigurationError(f"{setting}[{key!r}] is not a setting{hint}")
    if not raw.get("PUBLIC_URL"):
        raise ConfigurationError(
            f"{setting}['PUBLIC_URL'] is not set: set it to Kratos's public URL, "
            "e.g. 'http://kratos:4433'"
        )
    values = {KEYS[key]: value for key, value in raw.items() if key in KEYS}
    try:
        config = KratosConfig(**values)
    except ConfigurationError as error:
        name = str(error).split(" ", 1)[0]
        raise ConfigurationError(f"{setting}[{name.upper()!r}]: {error}") from None
    rules = PathRules(raw.get("RULES"), setting=f"{setting}['RULES']")
    create_users = raw.get("CREATE_USERS", True)
    if not isinstance(create_users, bool):
        raise ConfigurationError(f"{setting}['CREATE_USERS'] must be True or False")
    user_fields = _user_fields(raw.get("USER_FIELDS"), f"{setting}['USER_FIELDS']")
    return Settings(config, rules, create_users, user_fields)


def _user_fields(raw: Any, name: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) and key and value
        for key, value in raw.items()
    ):
        raise ConfigurationError(
            f"{name} must map user fields to trait paths, e.g. {{'email': 'email'}}"
        )
    for key in raw:
        if key in PROTECTED_USER_FIELDS:
            raise ConfigurationError(
                f"{name}[{key!r}]: {key} is the app's to set, never copied from traits"
            )
    return dict(raw)
