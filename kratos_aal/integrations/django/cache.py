"""Django's cache framework as the shared tier: ``KRATOS_AAL["CACHE"] = "<alias>"``.

Entries are shared by every instance that uses the alias. Django's caches have no
publish/subscribe: a logout reaches the other instances' local copies when those lapse,
after ``LOCAL_CACHE_TTL`` at most.

Nothing read from the alias is unpickled (SPEC §5a). Django's ``RedisCache`` would unpickle
whatever Redis holds before kratos-aal could check its signature, so with that backend the
values go through the alias's own redis-py connection as plain bytes. The database, file
and Memcached backends unpickle what their store holds too, and have no way round it: they
are refused. ``LocMemCache`` (in this process only: nobody else writes to it) and
``DummyCache`` are allowed.
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
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.utils.module_loading import import_string

from ..._config import MAKE_RANDOM_ONE, guessable
from ..._store import REDIS_TIMEOUT, Listen
from ...exceptions import ConfigurationError

__all__ = ["DjangoCache", "DjangoRedisCache", "prepare", "store"]

T = TypeVar("T")


#: Seconds a call to the Django cache may take before it counts as a fault (a miss).
#: Django's backends bring their own timeouts, or none: its RedisCache waits for as long
#: as a paused Redis does, unless the alias's OPTIONS set ``socket_timeout``.
TIMEOUT = REDIS_TIMEOUT
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


class DjangoRedisCache(DjangoCache):
    """The store on an alias of Django's ``RedisCache``: raw bytes, never pickle.

    Each call takes the alias's own redis-py client (its connection pool, with the alias's
    ``LOCATION`` and ``OPTIONS``: password, TLS, database) for the server Django writes to,
    and keys as Django would (the alias's ``KEY_PREFIX`` and ``VERSION``), but reads and
    writes the bytes themselves: Django's serializer, which unpickles whatever Redis holds,
    is never used. Calls run on the same threads, with the same time limit, as any alias.
    """

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        return _CALLS.run(lambda: _bytes(_redis(self.alias).get(_key(self.alias, key))))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds (whole milliseconds, at least one)."""
        _CALLS.run(lambda: _redis(self.alias).set(_key(self.alias, key), value, px=_ms(ttl)))

    def delete(self, key: str, channel: str | None) -> None:
        """Delete *key* (no message: nothing listens on an alias)."""
        _CALLS.run(lambda: _redis(self.alias).delete(_key(self.alias, key)))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set (``SET NX PX``); return whether it was set."""
        return bool(_CALLS.run(lambda: self._add(key, value, ttl)))

    def peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set, in one round trip."""
        return _CALLS.run(lambda: self._peek(key, lock))

    async def aget(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        return await _CALLS.arun(lambda: _bytes(_redis(self.alias).get(_key(self.alias, key))))

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """Keep *value* for *ttl* seconds."""
        await _CALLS.arun(lambda: _redis(self.alias).set(_key(self.alias, key), value, px=_ms(ttl)))

    async def aadd(self, key: str, value: bytes, ttl: float) -> bool:
        """Set *key* only if it is not set; return whether it was set."""
        return bool(await _CALLS.arun(lambda: self._add(key, value, ttl)))

    async def apeek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        """Return *key*'s value and whether *lock* is still set."""
        return await _CALLS.arun(lambda: self._peek(key, lock))

    async def adelete(self, key: str) -> None:
        """Delete *key*."""
        await _CALLS.arun(lambda: _redis(self.alias).delete(_key(self.alias, key)))

    def _add(self, key: str, value: bytes, ttl: float) -> Any:
        return _redis(self.alias).set(_key(self.alias, key), value, px=_ms(ttl), nx=True)

    def _peek(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        value, held = _redis(self.alias).mget([_key(self.alias, key), _key(self.alias, lock)])
        return _bytes(value), held is not None


def _redis(alias: str) -> Any:
    # The client of the server Django writes to: a replica may not have seen a logout yet.
    return caches[alias]._cache.get_client(None, write=True)


def _key(alias: str, key: str) -> str:
    return str(caches[alias].make_key(key))


def _bytes(value: object) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def store(alias: str) -> DjangoCache:
    """Return the shared-cache store on *alias* (raw bytes on Django's ``RedisCache``)."""
    if isinstance(caches[alias], RedisCache):
        return DjangoRedisCache(alias)
    return DjangoCache(alias)


def _backend_problem(alias: str, setting: str) -> str | None:
    """Return why *alias*'s backend cannot hold shared entries, or ``None``."""
    path = (getattr(django_settings, "CACHES", {}) or {})[alias].get("BACKEND", "")
    try:
        backend = import_string(path)
    except ImportError:
        return f"{setting}['CACHE']: CACHES[{alias!r}]['BACKEND'] cannot be imported: {path!r}"
    if isinstance(backend, type) and issubclass(backend, (RedisCache, LocMemCache, DummyCache)):
        return None
    return (
        f"{setting}['CACHE']: CACHES[{alias!r}] uses {path}, which unpickles whatever its "
        "store holds: whoever can write there could run code in this app. Use an alias of "
        "django.core.cache.backends.redis.RedisCache (kratos-aal reads it as plain bytes) "
        f"or {setting}['CACHE_URL'] = 'redis://...'"
    )


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
        problem = _backend_problem(alias, setting)
        if problem is not None:
            raise ConfigurationError(problem)
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
