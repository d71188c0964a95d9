"""Django's cache framework as the shared tier: ``KRATOS_AAL["CACHE"] = "<alias>"``.

Whatever backend the alias is (Redis, Memcached, the database), entries are shared by
every instance that uses it. Django's caches have no publish/subscribe: a logout reaches
the other instances' local copies when those lapse, after ``LOCAL_CACHE_TTL`` at most.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches

from ..._shared import Listen
from ...exceptions import ConfigurationError

__all__ = ["DjangoCache", "prepare"]


class DjangoCache:
    """The shared-cache store on ``django.core.cache.caches[alias]``.

    The async methods use the backend's own ``aget``/``aset`` in async views.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.listen: Listen | None = None

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        value = caches[self.alias].get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds (whole seconds; the value says when it ends)."""
        caches[self.alias].set(key, value, timeout=max(1, math.ceil(ttl)))

    def delete(self, key: str, channel: str | None) -> None:
        """Delete *key* (no message: Django's caches cannot publish)."""
        caches[self.alias].delete(key)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set; return whether it was set."""
        return bool(caches[self.alias].add(key, value, timeout=max(1, math.ceil(ttl))))

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set."""
        found = caches[self.alias].get_many([key, lock])
        value = found.get(key)
        return (value if isinstance(value, bytes) else None), lock in found

    async def aget(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        value = await caches[self.alias].aget(key)
        return value if isinstance(value, bytes) else None

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds."""
        await caches[self.alias].aset(key, value, timeout=max(1, math.ceil(ttl)))

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set; return whether it was set."""
        return bool(await caches[self.alias].aadd(key, value, timeout=max(1, math.ceil(ttl))))

    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set."""
        found = await caches[self.alias].aget_many([key, lock])
        value = found.get(key)
        return (value if isinstance(value, bytes) else None), lock in found

    async def adelete(self, key: str) -> None:
        """Delete *key*."""
        await caches[self.alias].adelete(key)

    def close(self) -> None:
        """Nothing to close: Django closes its caches after each request."""


def derived_secret(secret_key: str) -> str:
    """Return the ``CACHE_KEY_SECRET`` derived from Django's ``SECRET_KEY``."""
    return hmac.new(secret_key.encode(), b"kratos-aal cache_key_secret", hashlib.sha256).hexdigest()


def prepare(raw: Any, setting: str) -> tuple[Any, str | None]:
    """Take ``CACHE`` out of a ``KRATOS_AAL`` dict and fill in ``CACHE_KEY_SECRET``.

    Returns the dict for the shared reader and the cache alias (or ``None``).

    Raises:
        ConfigurationError: ``CACHE`` is not one of ``CACHES``, or is set with ``CACHE_URL``.
    """
    if not isinstance(raw, Mapping):
        return raw, None
    values = dict(raw)
    alias = values.pop("CACHE", None)
    if alias is not None:
        known = list(getattr(django_settings, "CACHES", {}) or {})
        if not isinstance(alias, str) or alias not in known:
            raise ConfigurationError(
                f"{setting}['CACHE'] must name one of CACHES ({', '.join(known) or 'none'}), "
                f"got {alias!r}"
            )
        if values.get("CACHE_URL"):
            raise ConfigurationError(
                f"{setting}['CACHE'] and {setting}['CACHE_URL'] are both set: choose one"
            )
    if (alias or values.get("CACHE_URL")) and not values.get("CACHE_KEY_SECRET"):
        # Django refuses to start without a SECRET_KEY, so there always is one.
        values["CACHE_KEY_SECRET"] = derived_secret(django_settings.SECRET_KEY)
    return values, alias
