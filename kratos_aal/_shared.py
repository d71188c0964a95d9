"""The shared cache tier: whoami answers kept in Redis (or Django's cache) for every instance.

The in-process cache stays in front and is read first; this tier is asked only on a local
miss, and only ever as an accelerator: any fault (Redis down, slow, answering garbage, an
entry that does not verify) is a miss, and the request asks Kratos as it would without it.

The store is in ``_store``, the entries' names and signed values in ``_entries``, the
logouts heard and told across instances in ``_logouts``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from cachetools import LRUCache

from . import _observe, _store
from ._cache import HOLD_TTL
from ._config import KratosConfig
from ._core import Fetch
from ._kratos_api import WhoamiResult
from ._logouts import _TIERS, Logouts
from ._store import RedisCache, SharedCache
from .exceptions import ConfigurationError

__all__ = ["SharedTier", "tier_for"]

T = TypeVar("T")

#: Seconds between two looks of an instance waiting for another's whoami answer.
LOCK_POLL = 0.005
#: Seconds a waiter waits at most for that answer before it asks Kratos itself: a lock
#: left behind by an instance that died (or lost Redis) must not hold requests for long.
LOCK_WAIT = 0.5

#: A step of a lookup's plan: ``(what, *arguments)``. ``ASK``: the client calls Kratos
#: (it answers ``(value, ttl)``); the others are the store's (``PEEK``, ``ADD``, ``SET``,
#: ``DELETE``), a pause (``SLEEP``), or the retry of pending logouts (``RETRY``).
Step = tuple[Any, ...]
ASK, PEEK, ADD, SET, DELETE, SLEEP, RETRY = "ask", "peek", "add", "set", "delete", "sleep", "retry"


class SharedTier(Logouts):
    """One client's view of a shared cache: names, signs, reads, writes, and listens.

    Args:
        config: The client's config (``cache_key_secret``, ``cache_key_prefix``,
            ``local_cache_ttl``).
        store: The shared cache.
        keep: Puts a value into the client's local tier: ``keep(effect, value, ttl, since)``
            (*since*: the client's logout generation when the lookup began).
        drop: Drops a local key; ``drop(None)`` drops every local entry.
        timer: POSIX time in seconds (the client's, so a test's fake clock drives expiry).

    Raises:
        ConfigurationError: ``cache_key_secret`` is not set.
    """

    def __init__(
        self,
        config: KratosConfig,
        store: SharedCache,
        keep: Callable[[Fetch[Any], Any, float, int], None],
        drop: Callable[[bytes | None], None],
        timer: Callable[[], float] = time.time,
    ) -> None:
        if not config.cache_key_secret:
            raise ConfigurationError(
                "cache_key_secret is required with a shared cache: set it to a random "
                "string of at least 16 characters, the same on every instance"
            )
        self.config = config
        self.store = store
        self._keep = keep
        self._drop = drop
        self._timer = timer
        self._init_entries(config, config.cache_key_secret)
        self.channel = f"{self._prefix}invalidate"
        self._junk_seen = False
        self._lock = threading.Lock()
        # Shared name -> local key, so that a message naming an entry drops our copy.
        self._names: LRUCache[str, bytes] = LRUCache(config.cache_maxsize)
        # Shared name -> when its logout was heard: a load that started before must not
        # keep what it read. Shared names whose delete failed, to try again.
        self._heard: LRUCache[str, float] = LRUCache(config.cache_maxsize)
        self._pending: set[str] = set()
        # Concurrent cold lookups of one session on several instances make one whoami
        # call: the first takes a lock for as long as Kratos may take, the others wait.
        self._lock_ttl = config.timeout + 0.5
        # A logout leaves a tombstone beside the entry: while it lasts, no instance keeps
        # or shares a session for that name (SPEC §5a). It outlives the hold (cache_ttl)
        # and any entry a whoami under way at the logout could still write.
        self._tomb_ttl = config.cache_ttl + config.timeout + 1.0
        self._lock_wait = min(LOCK_WAIT, config.timeout)
        self._down_until = 0.0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None
        self._retrier: threading.Thread | None = None
        _TIERS.add(self)

    def local_ttl(self, ttl: float) -> float:
        """Return how long a local copy may stay in front of the shared tier."""
        return min(ttl, self.config.local_cache_ttl)

    # ------------------------------------------------------------------ a local miss

    def loading(self, effect: Fetch[T], since: int) -> Generator[Step, Any, T]:
        """The plan of a local miss: *effect*'s value from the shared tier, else from Kratos.

        Kratos's answer is shared in turn. *since* is the client's logout generation when
        the lookup began (see ``keep``). Its steps are done by :meth:`perform` or
        :meth:`aperform`, and the client's own (``ASK``: a call to Kratos).
        """
        request = effect.request()
        name = self.name_of(request)
        if name is None:
            result, ttl = yield (ASK, effect)
            self._keep(effect, result, ttl, since)
            return result  # type: ignore[no-any-return]
        self._listen()
        started = _store._monotonic()
        lock: str | None = None
        held = False  # a logout's tombstone lay there before Kratos was asked
        if not effect.refresh:
            value: object = None
            if self._usable():
                try:
                    value, held = yield (PEEK, name, self._tomb_of(name))
                except Exception as error:
                    self._fault(error, "a read")
                else:
                    if self._pending:
                        yield (RETRY,)
            if not held:
                found = self._found(effect, name, value, started, since)
                if found is None:
                    lock, found = yield from self._lead_or_wait(effect, name, started, since)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        try:
            result, ttl = yield (ASK, effect)
            buried = held or (self._has_session(result) and (yield from self._buried(name)))
            shared = self._after_kratos(effect, name, result, ttl, started, since, buried, held)
            if shared is not None:
                try:
                    yield (SET, name, shared, ttl)
                except Exception as error:
                    self._fault(error, "a write")
        finally:
            if lock is not None:
                try:
                    yield (DELETE, lock)
                except Exception as error:
                    self._fault(error, "an unlock")
        return result  # type: ignore[no-any-return]

    def _buried(self, name: str) -> Generator[Step, Any, bool]:
        """Return whether a logout of *name* left its tombstone (``False`` when Redis fails)."""
        if not self._usable():
            return False
        try:
            return bool((yield (PEEK, name, self._tomb_of(name)))[1])
        except Exception as error:
            self._fault(error, "a read")
            return False

    @staticmethod
    def _has_session(result: object) -> bool:
        return getattr(result, "session", None) is not None

    def _lead_or_wait(
        self, effect: Fetch[Any], name: str, started: float, since: int
    ) -> Generator[Step, Any, tuple[str | None, Any]]:
        """Take *name*'s lock, or wait for the answer of the instance that holds it.

        Returns ``(lock, None)`` to ask Kratos and unlock after, ``(None, answer)`` with
        the other instance's answer, or ``(None, None)`` to ask Kratos anyway (no answer
        came: the holder found no session, failed, or took longer than ``LOCK_WAIT``).
        """
        if not self._usable():
            return None, None
        lock = self._lock_of(name)
        try:
            if (yield (ADD, lock, b"1", self._lock_ttl)):
                return lock, None
            deadline = time.monotonic() + self._lock_wait
            while time.monotonic() < deadline:
                yield (SLEEP, LOCK_POLL)
                value, held = yield (PEEK, name, lock)
                if value is not None or not held:
                    return None, self._found(effect, name, value, started, since)
        except Exception as error:
            self._fault(error, "coalescing")
        return None, None

    def perform(self, step: Step) -> Any:
        """Do a step of :meth:`loading` (not ``ASK``), blocking."""
        op = step[0]
        if op is SLEEP:
            return time.sleep(step[1])
        if op is RETRY:
            return self._retry_deletes()
        if op is DELETE:
            return self.store.delete(step[1], None)
        return getattr(self.store, op)(*step[1:])  # peek, add, set

    async def aperform(self, step: Step) -> Any:
        """Do a step of :meth:`loading` (not ``ASK``), without blocking the loop."""
        op = step[0]
        if op is SLEEP:
            return await asyncio.sleep(step[1])
        if op is RETRY:
            return await asyncio.to_thread(self._retry_deletes)
        return await getattr(self.store, "a" + op)(*step[1:])  # apeek, aadd, aset, adelete

    # ------------------------------------------------------------------ both sides

    def _found(
        self, effect: Fetch[Any], name: str, value: object, started: float, since: int
    ) -> Any:
        found = None if value is None else self.decode(name, value, self._timer())
        _observe.cache_lookup("shared", found is not None)
        if found is None:
            return None
        result, left = found
        # A logout heard while we read: this request may use the answer, no later one.
        if not self._remember(name, effect.key, started):
            self._keep(effect, result, left, since)
        return result

    def _after_kratos(
        self,
        effect: Fetch[Any],
        name: str,
        result: object,
        ttl: float,
        started: float,
        since: int,
        buried: bool,
        held: bool,
    ) -> bytes | None:
        """Keep Kratos's answer locally; return the value to share, or ``None``.

        Nothing is kept or shared when a logout was heard since *started*, or when a
        logout's tombstone came while Kratos was asked. A tombstone that lay there
        before (*held*: a request between a logout and Kratos's end of the session)
        lets the answer be kept locally for ``HOLD_TTL`` at most, and never shared.
        """
        if self._remember(name, effect.key, started, self._has_session(result)):
            return None
        if buried:
            if held:
                self._keep(effect, result, min(ttl, HOLD_TTL), since)
            return None
        self._keep(effect, result, ttl, since)
        session = getattr(result, "session", None)
        if not isinstance(result, WhoamiResult) or session is None or ttl < 0.001:
            return None
        if not self._usable():
            return None
        return self.encode(name, session, ttl, self._timer())

    def _remember(self, name: str, key: bytes, started: float, session: bool = True) -> bool:
        """Map *name* to the local *key*; return whether a logout was heard since *started*.

        Only a *session* is mapped: a logout message has nothing else to drop, and bogus
        cookies (a 401 each) must not push a live session's name out of the map, which
        would leave its local copy allowed after a logout elsewhere.
        """
        with self._lock:
            if session:
                self._names[name] = key
            heard = self._heard.get(name)
        return heard is not None and heard >= started


def tier_for(
    config: KratosConfig,
    store: SharedCache | None,
    keep: Callable[[Fetch[Any], Any, float, int], None],
    drop: Callable[[bytes | None], None],
    timer: Callable[[], float],
) -> SharedTier | None:
    """Return the shared tier for *config* (``cache_url``) or *store*, or ``None``."""
    if store is None:
        if config.cache_url is None:
            return None
        return SharedTier(config, RedisCache(config.cache_url), keep, drop, timer)
    return SharedTier(config, store, keep, drop, timer)
