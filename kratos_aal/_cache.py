"""A thread-safe expiring cache, and one-call-per-key coalescing for threads and tasks."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any, Final

from cachetools import LRUCache

from .exceptions import KratosAALError

__all__ = ["HOLD_TTL", "MISSING", "AsyncFlights", "Flights", "TTLCache", "Tombstones"]

#: Seconds a session is cached at most while a logout holds it back (see Tombstones):
#: enough for the checks of one request (a rule, then a decorator), short enough that a
#: session Kratos ends a moment later is not allowed from a cache for longer.
HOLD_TTL = 1.0


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


class _Entries(LRUCache):  # type: ignore[type-arg]
    """cachetools' LRU, in which an entry read on the hit path gets a second chance.

    Hits read entries without the lock and without touching the LRU order; they only flag
    the entry. Evicting a flagged entry clears the flag and makes it most recently used
    instead (LRU approximated as CLOCK does it); the first unflagged entry goes. Called
    under the cache's lock, from cachetools' own ``__setitem__`` when the cache is full.
    """

    def __init__(self, maxsize: int, index: dict[Hashable, list[Any]]) -> None:
        super().__init__(maxsize)
        self._index = index

    def popitem(self) -> tuple[Hashable, list[Any]]:
        for _ in range(len(self)):
            key, entry = super().popitem()
            if not entry[3]:
                del self._index[key]
                return key, entry
            entry[3] = False
            super().__setitem__(key, entry)  # room for it: one was just taken out
        key, entry = super().popitem()  # every entry was flagged: now none is
        del self._index[key]
        return key, entry


class TTLCache:
    """A bounded LRU cache whose every entry has its own time to live, read with or without lock.

    Entries are ``[expires_at, value, hit, touched]`` in a cachetools ``LRUCache``, and in
    the plain dict :attr:`index` beside it. :meth:`get` reads under the lock, drops an
    expired entry and marks the entry most recently used. The hit path
    (:meth:`KratosClient.cached_allow <kratos_aal.KratosClient.cached_allow>`) reads
    :attr:`index` instead: no lock (one C-level dict read), no reordering; it checks
    ``expires_at`` itself and only sets ``touched``, which earns the entry a second chance
    at eviction. A reader racing a writer may see no entry: that is a miss, and a miss
    takes the locked path. The lock is held only around dict operations, never across I/O
    or an ``await``.

    Args:
        maxsize: How many entries at most.
        timer: The clock of the time to live (monotonic in production).
        prepare: Called with each stored value; what it returns is the entry's ``hit``
            (``None``: the entry is not for the hit path).
    """

    def __init__(
        self,
        maxsize: int,
        timer: Callable[[], float],
        prepare: Callable[[Any], Any] | None = None,
    ) -> None:
        self._timer = timer
        self._lock = threading.Lock()
        self._prepare = prepare
        self._maxsize = maxsize
        #: Every entry by key, for lock-free readers; written only under the lock.
        self.index: dict[Hashable, list[Any]] = {}
        self._data = _Entries(maxsize, self.index)

    def get(self, key: Hashable) -> Any:
        """Return the live value for *key*, or ``MISSING``."""
        now = self._timer()
        with self._lock:
            entry = self._data.get(key)  # a read marks it most recently used
            if entry is None:
                return MISSING
            if entry[0] <= now:
                self._drop(key)
                return MISSING
            return entry[1]

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        """Keep *value* for *ttl* seconds; a *ttl* of 0 or less drops *key* instead."""
        expires = self._timer() + ttl
        hit = self._prepare(value) if self._prepare is not None and ttl > 0 else None
        with self._lock:
            self._drop(key)
            if ttl > 0:
                entry = [expires, value, hit, False]
                self._data[key] = entry  # evicts first when full
                self.index[key] = entry

    def _drop(self, key: Hashable) -> None:
        # Under the lock.
        self._data.pop(key, None)
        self.index.pop(key, None)

    def pop(self, key: Hashable) -> None:
        """Drop *key* if present."""
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self.index.clear()
            self._data = _Entries(self._maxsize, self.index)

    def __len__(self) -> int:
        now = self._timer()
        with self._lock:
            for key in [k for k, entry in self.index.items() if entry[0] <= now]:
                self._drop(key)
            return len(self.index)


def _fresh(error: BaseException) -> BaseException:
    # Each waiter raises its own copy, so that threads do not share one traceback.
    return copy.copy(error) if isinstance(error, KratosAALError) else error


class Flights:
    """Coalesce concurrent loads of one key across threads into one call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future[Any]] = {}

    def run(
        self, key: Hashable, load: Callable[[], Any], recheck: Callable[[], Any]
    ) -> tuple[Any, bool]:
        """Return ``(value, from_cache)``: *recheck*'s hit, a running load's result, or *load*'s.

        *recheck* runs under the lock, so a load that finished a moment ago is seen.
        """
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                hit = recheck()
                if hit is not MISSING:
                    return hit, True
                call = self._calls[key] = Future()
                leader = True
            else:
                leader = False
        if not leader:
            try:
                return call.result(), False
            except BaseException as error:
                raise _fresh(error) from None
        try:
            value = load()
        except BaseException as error:
            call.set_exception(error)
            raise
        else:
            call.set_result(value)
            return value, False
        finally:
            with self._lock:
                del self._calls[key]


class AsyncFlights:
    """Coalesce concurrent loads of one key across asyncio tasks into one call.

    The load runs in a task of its own: a waiter that is cancelled does not cancel it
    for the others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, asyncio.Task[Any]] = {}

    async def run(
        self, key: Hashable, load: Callable[[], Awaitable[Any]], recheck: Callable[[], Any]
    ) -> tuple[Any, bool]:
        """Return ``(value, from_cache)``, like :meth:`Flights.run`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            task = self._calls.get(key)
            if task is None or task.get_loop() is not loop:
                hit = recheck()
                if hit is not MISSING:
                    return hit, True
                # A loop closed under its load (without cancelling its tasks) never ends
                # it: forgotten here, or one would be kept per such request.
                for stale in [k for k, t in self._calls.items() if t.get_loop().is_closed()]:
                    del self._calls[stale]
                task = loop.create_task(_call(load))
                # A task of another event loop cannot be awaited here: this one runs alone.
                self._calls.setdefault(key, task)
                task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task), False

    def _forget(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        with self._lock:
            if self._calls.get(key) is task:
                del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when all waiters left


async def _call(load: Callable[[], Awaitable[Any]]) -> Any:
    return await load()


class Tombstones:
    """Credentials logged out lately, by cache key: what may no longer be kept for them.

    :meth:`mark` (``invalidate()``, ``logout_url()``) bumps a generation. A lookup notes
    the generation when it starts; its answer is not kept when the key was marked since
    (a whoami under way during the logout saw a session that is ending). For *hold*
    seconds after the mark, an answer that holds a session is kept only for
    :data:`HOLD_TTL`: the browser reaches Kratos's logout only after the app answered,
    and a request in between (another tab, a stolen cookie) must not cache the session
    that is about to end for longer than that.
    """

    def __init__(self, maxsize: int, timer: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._marks: LRUCache[Hashable, tuple[int, float]] = LRUCache(maxsize)
        self._timer = timer
        #: Bumped by every mark; read without the lock (an int is read atomically).
        self.generation = 0

    def mark(self, key: Hashable, hold: float) -> None:
        """Note that *key* was logged out now; hold sessions back for *hold* seconds."""
        with self._lock:
            self.generation += 1
            self._marks[key] = (self.generation, self._timer() + hold)

    def ttl(self, key: Hashable, since: int, session: bool, ttl: float) -> float:
        """Return how long an answer for *key* from a lookup begun at *since* may be kept."""
        if not self._marks:
            return ttl
        with self._lock:
            mark = self._marks.get(key)
        if mark is None:
            return ttl
        generation, until = mark
        if generation > since:
            return 0.0
        if session and self._timer() < until:
            return min(ttl, HOLD_TTL)
        return ttl
