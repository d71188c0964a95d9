"""The ``KRATOS_AAL`` settings dict, read once into a typed object, and the clients."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from ... import _settings
from ..._client import AsyncKratosClient, KratosClient
from ..._config import parse_origin
from ...exceptions import ConfigurationError
from . import cache

logger = logging.getLogger("kratos_aal")

__all__ = ["KratosAALSettings", "get", "override_clients"]

SETTING = "KRATOS_AAL"
KEYS = _settings.KEYS
ALL_KEYS = (*_settings.COMMON_KEYS, *_settings.USER_KEYS, "CACHE")
KratosAALSettings = _settings.Settings


def read(raw: Any) -> KratosAALSettings:
    """Validate a ``KRATOS_AAL`` dict (the keys of every framework, and the users' keys).

    Raises:
        ConfigurationError: a key is missing, unknown or wrong; the message names it.
    """
    values, _ = cache.prepare(raw, SETTING)  # CACHE (an alias of CACHES), and the secret
    if isinstance(values, dict) and "TRUSTED_ORIGINS" not in values:
        values["TRUSTED_ORIGINS"] = csrf_trusted_origins()
    return _settings.read(values, setting=SETTING, users=True)


def csrf_trusted_origins() -> list[str]:
    """Return Django's ``CSRF_TRUSTED_ORIGINS`` entries that are origins (the default of
    ``TRUSTED_ORIGINS``); ``https://*.example.com`` is kept, and matched as Django does.

    An entry with a path or no scheme matches no ``Origin`` header in Django either
    (Django compares whole origins): it is left out rather than failing start-up.
    """
    found = []
    for entry in getattr(django_settings, "CSRF_TRUSTED_ORIGINS", None) or ():
        try:
            parse_origin(entry)
        except ConfigurationError:
            continue
        found.append(entry)
    return found


def shared_cache() -> cache.DjangoCache | None:
    """Return the store of ``KRATOS_AAL["CACHE"]``, or ``None`` when it is not set."""
    _, alias = cache.prepare(getattr(django_settings, SETTING, None), SETTING)
    return None if alias is None else cache.store(alias)


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
            _warn_if_not_installed()
            try:
                _state.settings = read(getattr(django_settings, SETTING, None))
            except ConfigurationError as error:
                raise ImproperlyConfigured(str(error)) from None
        return _state.settings


APP = "kratos_aal.integrations.django"
_warned_not_installed = False


def _warn_if_not_installed() -> None:
    """Say once per process that the app is missing from INSTALLED_APPS.

    Everything works without it except the system checks, which then stop silently: a
    typo'd KRATOS_AAL key would pass ``manage.py check`` (and the user models are missing).
    """
    global _warned_not_installed
    if _warned_not_installed or apps.is_installed(APP):
        return
    _warned_not_installed = True
    logger.warning(
        "%r is not in INSTALLED_APPS: kratos-aal works, but its system checks of KRATOS_AAL "
        "do not run (a mistyped key passes `manage.py check`). Add it to INSTALLED_APPS.",
        APP,
    )


def clients() -> tuple[KratosClient, AsyncKratosClient]:
    """Return the blocking and the awaitable client (one cache between them)."""
    if _state.override is not None:
        return _state.override
    if _state.clients is not None:
        return _state.clients
    config = get().config
    with _state.lock:
        if _state.clients is None:
            store = shared_cache()
            sync_client = KratosClient(config, shared_cache=store)
            async_client = AsyncKratosClient(config, shared_cache=store)
            async_client._share_cache(sync_client)  # one cache for WSGI and ASGI views
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
    if setting in (SETTING, "CSRF_TRUSTED_ORIGINS"):  # the default of TRUSTED_ORIGINS
        with _state.lock:
            _state.settings = None
            _state.clients = None


setting_changed.connect(_reset)
