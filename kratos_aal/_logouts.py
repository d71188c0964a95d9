"""Logouts across instances: a logout buries the shared entry and tells every instance.

Each process listens (a thread, started on its first lookup, again in a forked worker)
for the names of entries that a logout elsewhere ended, and drops its local copy.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from cachetools import LRUCache

from . import _store
from ._credentials import Credentials
from ._entries import Entries
from ._kratos_api import whoami_request
from ._store import Faults, SharedCache

__all__ = ["Logouts"]

logger = logging.getLogger("kratos_aal")


class Logouts(Entries, Faults):
    """A tier's logouts: told, heard, and retried while the store is away."""

    store: SharedCache
    channel: str
    _drop: Callable[[bytes | None], None]
    _lock: threading.Lock
    _names: LRUCache[str, bytes]
    _heard: LRUCache[str, float]
    _pending: set[str]
    _tomb_ttl: float
    _junk_seen: bool
    _stop: threading.Event
    _listener: threading.Thread | None
    _listener_pid: int | None
    _retrier: threading.Thread | None

    def invalidate(self, credentials: Credentials) -> None:
        """Delete the shared entry of *credentials* and tell every instance to drop theirs.

        Tried even while the tier is backing off: a logout matters more than a timeout.
        """
        name = self.name_of(whoami_request(self.config, credentials))
        assert name is not None
        self._listen()
        with self._lock:
            # Heard here at once: a lookup of ours under way keeps and shares nothing.
            self._heard[name] = _store._monotonic()
        try:
            self._bury(name)
        except Exception as error:
            self._fault(error, "a delete (logout)")
            # Deleted as soon as the store answers again (a logout must not be lost).
            with self._lock:
                if len(self._pending) < self.config.cache_maxsize:
                    self._pending.add(name)
            self._retry_soon()

    def _on_message(self, data: bytes) -> None:
        # Only invalidate() publishes here, and only names: anything else (a stranger's 1 MB,
        # bytes that are no name) is dropped, and kept nowhere.
        if not self._is_name(data):
            self._junk(len(data))
            return
        name = data.decode("ascii")
        with self._lock:
            key = self._names.pop(name, None)
            self._heard[name] = _store._monotonic()
        if key is not None:
            self._drop(key)

    def _junk(self, size: int) -> None:
        # The size only: whatever it holds is a stranger's, and may be anything.
        level = logging.DEBUG if self._junk_seen else logging.WARNING
        self._junk_seen = True
        logger.log(
            level,
            "kratos_aal shared cache: ignored a message of %d bytes on %s that names no "
            "entry (only kratos-aal should publish there)",
            size,
            self.channel,
        )

    def _on_subscribed(self) -> None:
        # Messages sent while we were not subscribed are lost: drop what we hold, and
        # delete what our own logouts could not while Redis was away.
        self._drop(None)
        self._retry_deletes()

    def _retry_deletes(self) -> None:
        with self._lock:
            pending = list(self._pending)
        for name in pending:
            try:
                self._bury(name)
            except Exception as error:
                self._fault(error, "a delete (logout)")
                return
            with self._lock:
                self._pending.discard(name)

    def _bury(self, name: str) -> None:
        """Lay *name*'s tombstone, delete its entry, and tell every instance.

        The tombstone first: an instance whose whoami was under way writes the entry
        after it saw no tombstone, or not at all; a reader that finds the tombstone
        ignores whatever entry lies beside it.
        """
        self.store.set(self._tomb_of(name), b"1", self._tomb_ttl)
        self.store.delete(name, self.channel)

    def _retry_soon(self) -> None:
        """Retry the pending deletes after each back-off, until they are done.

        On a thread of its own: the instance that served a logout may get no request
        after it (the user has gone), and its lookups were the only other retry.
        """
        with self._lock:
            if self._retrier is not None and self._retrier.is_alive():
                return
            self._retrier = retrier = threading.Thread(
                target=self._retry_pending,
                args=(self._stop,),
                name="kratos-aal-logout-retry",
                daemon=True,
            )
        retrier.start()

    def _retry_pending(self, stop: threading.Event) -> None:
        while self._pending and not stop.wait(_store.BACKOFF):
            self._retry_deletes()

    def _listen(self) -> None:
        """Start the invalidation listener once per process (lazily: on the first lookup)."""
        if self._listener_pid == os.getpid() or self.store.listen is None:
            return
        with self._lock:
            # A forked worker (gunicorn --preload) inherits the object but not the thread.
            if self._listener_pid != os.getpid():
                self._listener_pid = os.getpid()
                self._stop = stop = threading.Event()
                self._listener = listener = threading.Thread(
                    target=self._run_listener,
                    args=(stop,),
                    name="kratos-aal-invalidations",
                    daemon=True,
                )
                listener.start()

    def _run_listener(self, stop: threading.Event) -> None:
        listen = self.store.listen
        assert listen is not None
        while not stop.is_set():
            try:
                listen(self.channel, self._on_message, self._on_subscribed, stop)
            except Exception as error:
                self._fault(error, "listening for logouts")
                stop.wait(_store.BACKOFF)

    def close(self) -> None:
        """Stop the listener and close the store's connections; both restart on next use."""
        with self._lock:
            listener, self._listener = self._listener, None
            self._listener_pid = None
            self._stop.set()
        if listener is not None:
            listener.join(timeout=2 * _store._POLL + _store.REDIS_TIMEOUT)
        try:
            self.store.close()
        except Exception as error:
            self._fault(error, "closing")


#: Every tier of this process, to mend after a fork.
_TIERS: weakref.WeakSet[Logouts] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by one of the parent's threads (its listener, hearing a logout) at the
    # fork would be held for ever in the child: the child's first lookup would hang.
    for tier in list(_TIERS):
        tier._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system has it
    os.register_at_fork(after_in_child=_after_fork_in_child)
