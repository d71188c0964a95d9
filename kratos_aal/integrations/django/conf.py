"""The ``KRATOS_AAL`` settings dict, read once into a typed object, and the clients."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from ..._client import AsyncKratosClient, KratosClient
from ..._config import CONFIG_FIELDS, KratosConfig
from ..._web import PathRules
from ...exceptions import ConfigurationError

__all__ = ["KratosAALSettings", "get", "override_clients"]

SETTING = "KRATOS_AAL"
#: Every key of KRATOS_AAL: one upper-case key per KratosConfig field, and RULES.
KEYS = {name.upper(): name for name in CONFIG_FIELDS}
ALL_KEYS = (*KEYS, "RULES", "CREATE_USERS", "USER_FIELDS")
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
class KratosAALSettings:
    """``settings.KRATOS_AAL``, validated."""

    config: KratosConfig
    rules: PathRules
    create_users: bool = True
    user_fields: Mapping[str, str] = field(default_factory=dict)


def read(raw: Any) -> KratosAALSettings:
    """Validate a ``KRATOS_AAL`` dict.

    Raises:
        ConfigurationError: a key is missing, unknown or wrong; the message names it.
    """
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"{SETTING} must be a dict such as {{'PUBLIC_URL': 'http://kratos:4433'}}"
        )
    for key in raw:
        if key not in ALL_KEYS:
            close = difflib.get_close_matches(str(key), ALL_KEYS, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; the keys are {', '.join(ALL_KEYS)}"
            )
            raise ConfigurationError(f"{SETTING}[{key!r}] is not a setting{hint}")
    if not raw.get("PUBLIC_URL"):
        raise ConfigurationError(
            f"{SETTING}['PUBLIC_URL'] is not set: set it to Kratos's public URL, e.g. 'http://kratos:4433'"
        )
    values = {KEYS[key]: value for key, value in raw.items() if key in KEYS}
    try:
        config = KratosConfig(**values)
    except ConfigurationError as error:
        field = str(error).split(" ", 1)[0]
        raise ConfigurationError(f"{SETTING}[{field.upper()!r}]: {error}") from None
    rules = PathRules(raw.get("RULES"), setting=f"{SETTING}['RULES']")
    create_users = raw.get("CREATE_USERS", True)
    if not isinstance(create_users, bool):
        raise ConfigurationError(f"{SETTING}['CREATE_USERS'] must be True or False")
    return KratosAALSettings(config, rules, create_users, _user_fields(raw.get("USER_FIELDS")))


def _user_fields(raw: Any) -> dict[str, str]:
    name = f"{SETTING}['USER_FIELDS']"
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


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: KratosAALSettings | None = None
        self.clients: tuple[KratosClient, AsyncKratosClient] | None = None
        self.override: tuple[KratosClient, AsyncKratosClient] | None = None


_state = _State()


def get() -> KratosAALSettings:
    """Return the validated settings.

    Raises:
        ImproperlyConfigured: ``KRATOS_AAL`` is missing or wrong; the message names the key.
    """
    settings = _state.settings
    if settings is not None:  # every request: no lock once read
        return settings
    with _state.lock:
        if _state.settings is None:
            try:
                _state.settings = read(getattr(django_settings, SETTING, None))
            except ConfigurationError as error:
                raise ImproperlyConfigured(str(error)) from None
        return _state.settings


def clients() -> tuple[KratosClient, AsyncKratosClient]:
    """Return the blocking and the awaitable client (one cache between them)."""
    if _state.override is not None:
        return _state.override
    if _state.clients is not None:
        return _state.clients
    config = get().config
    with _state.lock:
        if _state.clients is None:
            sync_client = KratosClient(config)
            async_client = AsyncKratosClient(config)
            async_client._cache = sync_client._cache  # one cache for WSGI and ASGI views
            _state.clients = (sync_client, async_client)
        return _state.clients


@contextmanager
def override_clients(client: KratosClient, async_client: AsyncKratosClient) -> Iterator[None]:
    """Use these clients (e.g. ``fake_kratos.client()``) instead of the settings' own."""
    previous = _state.override
    _state.override = (client, async_client)
    try:
        yield
    finally:
        _state.override = previous


def _reset(*, setting: str, **_: Any) -> None:
    if setting == SETTING:
        with _state.lock:
            _state.settings = None
            _state.clients = None


setting_changed.connect(_reset)
