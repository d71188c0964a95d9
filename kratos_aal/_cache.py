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

__all__ = ["MISSING", "AsyncFlights", "Flights", "TTLCache"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


class TTLCache:
    """A bounded LRU cache whose every entry has its own time to live.

    Entries are ``(expires_at, value)`` in a cachetools ``LRUCache``; an expired entry is
    dropped when it is read, and the least recently used goes first when the cache is
    full. One timer call per read: this sits on every request's path. The lock is held
    only around dict operations, never across I/O or an ``await``.
    """

    def __init__(self, maxsize: int, timer: Callable[[], float]) -> None:
        self._timer = timer
        self._lock = threading.Lock()
        self._data: LRUCache[Hashable, tuple[float, Any]] = LRUCache(maxsize)

    def get(self, key: Hashable) -> Any:
        """Return the live value for *key*, or ``MISSING``."""
        now = self._timer()
        with self._lock:
            try:
                entry = self._data[key]
            except KeyError:
                return MISSING
            if entry[0] <= now:
                del self._data[key]
                return MISSING
            return entry[1]

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        """Keep *value* for *ttl* seconds; a *ttl* of 0 or less drops *key* instead."""
        expires = self._timer() + ttl
        with self._lock:
            if ttl > 0:
                self._data[key] = (expires, value)
            else:
                self._data.pop(key, None)

    def pop(self, key: Hashable) -> None:
        """Drop *key* if present."""
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        now = self._timer()
        with self._lock:
            for key in [k for k, (expires, _) in self._data.items() if expires <= now]:
                del self._data[key]
            return len(self._data)


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
