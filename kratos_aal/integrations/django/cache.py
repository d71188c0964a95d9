"""Django's cache framework as the shared tier: ``KRATOS_AAL["CACHE"] = "<alias>"``.

Whatever backend the alias is (Redis, Memcached, the database), entries are shared by
every instance that uses it. Django's caches have no publish/subscribe: a logout reaches
the other instances' local copies when those lapse, after ``LOCAL_CACHE_TTL`` at most.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.cache import caches

from ... import _shared
from ..._config import MAKE_RANDOM_ONE, guessable
from ..._shared import Listen
from ...exceptions import ConfigurationError

__all__ = ["DjangoCache", "prepare"]

T = TypeVar("T")


#: Seconds a call to the Django cache may take before it counts as a fault (a miss).
#: Django's backends bring their own timeouts, or none: its RedisCache waits for as long
#: as a paused Redis does, unless the alias's OPTIONS set ``socket_timeout``.
TIMEOUT = _shared.REDIS_TIMEOUT
#: Threads that make the calls, each keeping its own connections (Django's caches are
#: per thread). A call that hangs holds one; those waiting behind it are given up.
THREADS = 4


class _Calls:
    """A few threads that run cache calls for a caller that waits ``TIMEOUT`` at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def _executor(self) -> ThreadPoolExecutor:
        # Made in each process: a forked worker has none of its parent's threads.
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="kratos-aal-cache")
                self._pid = os.getpid()
            return self._pool

    def run(self, call: Callable[[], T]) -> T:
        """Return *call*'s result; raise ``TimeoutError`` when it takes longer than TIMEOUT."""
        future = self._executor().submit(call)
        try:
            return future.result(timeout=TIMEOUT)
        except FutureTimeout:
            future.cancel()  # not started yet: never run (a late write could undo a logout)
            raise TimeoutError("the Django cache did not answer in time") from None

    async def arun(self, call: Callable[[], T]) -> T:
        """Await *call*, run on our threads, for TIMEOUT at most (then ``TimeoutError``)."""
        future = self._executor().submit(call)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), TIMEOUT)
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
            future.cancel()
            raise TimeoutError("the Django cache did not answer in time") from None


_CALLS = _Calls()


class DjangoCache:
    """The shared-cache store on ``django.core.cache.caches[alias]``.

    Every call runs on a few threads of our own and is a fault (a miss) when it takes
    longer than :data:`TIMEOUT`, whatever the backend. The async methods await those
    threads rather than the backend's ``aget``: Django runs most of those on its one
    thread-sensitive thread, where a paused Redis would hold up every async request.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.listen: Listen | None = None

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        value = _CALLS.run(lambda: caches[self.alias].get(key))
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds (whole seconds; the value says when it ends)."""
        _CALLS.run(lambda: caches[self.alias].set(key, value, timeout=_seconds(ttl)))

    def delete(self, key: str, channel: str | None) -> None:
        """Delete *key* (no message: Django's caches cannot publish)."""
        _CALLS.run(lambda: caches[self.alias].delete(key))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set; return whether it was set."""
        return bool(_CALLS.run(lambda: caches[self.alias].add(key, value, timeout=_seconds(ttl))))

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set."""
        found = _CALLS.run(lambda: caches[self.alias].get_many([key, lock]))
        value = found.get(key)
        return (value if isinstance(value, bytes) else None), lock in found

    async def aget(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        value = await _CALLS.arun(lambda: caches[self.alias].get(key))
        return value if isinstance(value, bytes) else None

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds."""
        await _CALLS.arun(lambda: caches[self.alias].set(key, value, timeout=_seconds(ttl)))

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set; return whether it was set."""
        added = await _CALLS.arun(lambda: caches[self.alias].add(key, value, timeout=_seconds(ttl)))
        return bool(added)

    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set."""
        found = await _CALLS.arun(lambda: caches[self.alias].get_many([key, lock]))
        value = found.get(key)
        return (value if isinstance(value, bytes) else None), lock in found

    async def adelete(self, key: str) -> None:
        """Delete *key*."""
        await _CALLS.arun(lambda: caches[self.alias].delete(key))

    def close(self) -> None:
        """Nothing to close: Django closes its caches after each request."""


def _seconds(ttl: float) -> int:
    return max(1, math.ceil(ttl))


def derived_secret(secret_key: str) -> str:
    """Return the ``CACHE_KEY_SECRET`` derived from Django's ``SECRET_KEY``."""
    return hmac.new(secret_key.encode(), b"kratos-aal cache_key_secret", hashlib.sha256).hexdigest()


#: What ``django-admin startproject`` puts before the 50 random characters of the
#: SECRET_KEY it writes: a marker for "change this before production", not a placeholder.
_STARTPROJECT_PREFIX = "django-insecure-"


def _secret_key_weakness(secret_key: object) -> str | None:
    """Return why SECRET_KEY is too guessable to derive ``CACHE_KEY_SECRET`` from, or ``None``."""
    if not isinstance(secret_key, str):
        return "not a string"
    rest = secret_key.removeprefix(_STARTPROJECT_PREFIX)
    if len(rest) < 16:
        return "shorter than 16 characters"
    return guessable(rest)


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
        # Django refuses to start without a SECRET_KEY, so there always is one. The derived
        # secret looks random whatever SECRET_KEY is: SECRET_KEY itself must not be guessable.
        secret_key = django_settings.SECRET_KEY
        weakness = _secret_key_weakness(secret_key)
        if weakness is not None:
            raise ConfigurationError(
                f"{setting}['CACHE_KEY_SECRET'] is derived from SECRET_KEY, which is "
                f"guessable ({weakness}): whoever can write to the shared cache and guess it "
                f"can forge sessions; set a random SECRET_KEY, or set CACHE_KEY_SECRET to one "
                f"made with {MAKE_RANDOM_ONE}"
            )
        values["CACHE_KEY_SECRET"] = derived_secret(secret_key)
    return values, alias
