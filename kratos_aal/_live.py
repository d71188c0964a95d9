"""Long-lived connections keep their route's guarantee while open (SPEC §5c).

A WebSocket or an event stream is allowed at its start like any request; afterwards it is
*watched*: its session is checked again through the client (the same cache and coalescing
as requests) before the cached answer runs out (``cache_ttl`` at most), at the moment its
``expires_at`` or the route's ``max_age`` lapses, and at once when ``invalidate()`` names
the session here or on another instance (the shared cache's logout messages). A check
that no longer allows ends the connection through the callback it was watched with.
Kratos unreachable keeps a connection open while what Kratos said last still vouches,
except after ``invalidate()`` named its session: a logout closes it whatever the outage.
A check this process had no room for (``max_concurrent_checks``) is tried again soon.

Cost: one timer per session and event loop, whatever the number of its connections, and at
most one check per :data:`MIN_PERIOD` each (``cache_ttl=0`` included); an open
connection costs a small object and nothing between checks. Framework-free: the ASGI
glue is in ``integrations/_asgi_live``.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._cache import HOLD_TTL
from ._core import session_key
from ._credentials import Credentials
from ._decision import DEFAULT_RETRY_AFTER, Decision, Outcome, Requirement
from ._diagnose import BUSY
from ._kratos_api import login_url, rebase
from ._models import Session

if TYPE_CHECKING:
    from ._client import AsyncKratosClient

__all__ = ["Connection", "Watcher", "lapse_of", "poke", "watcher_for"]

#: Seconds between two timed checks of one session at least, whatever ``cache_ttl`` (0
#: included) or an answer Kratos lets nobody cache (a logout's hold keeps one for a second):
#: an open connection costs at most one whoami a second. ``invalidate()`` is not held back.
MIN_PERIOD = 1.0
#: Seconds after a lapse (``max_age``, ``expires_at``) at which the check runs: the
#: decision counts a session as stale only once the lapse is past.
_AFTER_LAPSE = 0.05

#: What a watched connection is told when it must end: the decision, and where to send the
#: browser (``redirect_to`` with the connection's own ``return_to``), if anywhere.
OnClose = Callable[[Decision, "str | None"], None]


def _newest(session: Session, requirement: Requirement) -> float | None:
    times = [
        m.completed_at.timestamp()
        for m in session.authentication_methods
        if m.aal >= requirement.aal
        and m.completed_at is not None
        and (requirement.methods is None or m.method in requirement.methods)
    ]
    return max(times) if times else None


def lapse_of(session: Session | None, requirement: Requirement, now: float, ttl: float) -> float:
    """Return when what is known of *session* stops vouching for *requirement* (POSIX time).

    Its ``expires_at``, or the end of *requirement*'s ``max_age``, whichever comes first;
    a session with neither is vouched for *ttl* seconds from *now* (as a cached answer is).
    """
    lapse = math.inf
    if session is not None and session.expires_at is not None:
        lapse = session.expires_at.timestamp()
    if requirement.max_age is not None:
        newest = None if session is None else _newest(session, requirement)
        lapse = min(lapse, now if newest is None else newest + requirement.max_age)
    return now + ttl if lapse == math.inf else lapse


class Connection:
    """One watched connection; :meth:`Watcher.unwatch` it when it ends."""

    __slots__ = ("__weakref__", "closed", "group", "on_close", "requirement", "return_to")

    def __init__(
        self,
        group: _Group,
        requirement: Requirement,
        on_close: OnClose,
        return_to: Callable[[], str | None] | None,
    ) -> None:
        self.group = group
        self.requirement = requirement
        self.on_close = on_close
        self.return_to = return_to
        self.closed = False

    def close(self, decision: Decision) -> None:
        """End the connection for *decision* (once)."""
        if self.closed:
            return
        self.closed = True
        target = decision.redirect_to
        if target is not None and self.return_to is not None:
            try:
                back = self.return_to()
            except Exception:  # a Host that is no host: Kratos's own return_to stays
                back = None
            target = rebase(self.group.watcher.client.config, target, back) or target
        try:
            self.on_close(decision, target)
        finally:
            self.group.watcher.unwatch(self)


class _Group:
    """The connections of one session on one event loop, and their one timer."""

    __slots__ = (
        "again",
        "connections",
        "credentials",
        "handle",
        "key",
        "lapses",
        "logout",
        "loop",
        "running",
        "task",
        "watcher",
    )

    def __init__(self, watcher: Watcher, key: bytes, credentials: Credentials, loop: Any) -> None:
        self.watcher = watcher
        self.key = key
        self.credentials = credentials
        self.loop: asyncio.AbstractEventLoop = loop
        self.connections: dict[Requirement, set[Connection]] = {}
        #: Per requirement: until when (POSIX time) the last allowing answer vouches.
        self.lapses: dict[Requirement, float] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.running = True
        self.again = False  # poked while a check was under way: check once more after it
        #: ``invalidate()`` named the session: until when (the client's clock) an answer that
        #: still allows may be Kratos's before the browser reached its logout. Cleared by an
        #: allowing answer after that; while set, Kratos unreachable closes as a logout.
        self.logout: float | None = None

    def schedule(self, delay: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = self.loop.call_later(max(delay, 0.0), self._timed_recheck)

    def _timed_recheck(self) -> None:
        self.handle = None
        self.recheck_now()

    def recheck_now(self, logout: bool = False) -> None:
        """Check the session now (on the group's loop); a check under way is enough.

        *logout*: ``invalidate()`` named the session (here or on another instance).
        """
        if logout:
            client = self.watcher.client
            self.logout = client._clock() + max(client.config.cache_ttl, HOLD_TTL)
        if self.handle is not None:  # a poke: the timed check is this one
            self.handle.cancel()
            self.handle = None
        if not self.running:
            return
        if self.task is not None and not self.task.done():
            # That check may have begun before the logout it was poked for.
            self.again = True
            return
        self.again = False
        self.task = self.loop.create_task(self._recheck())

    async def _recheck(self) -> None:
        watcher = self.watcher
        client = watcher.client
        delay = client.config.cache_ttl or MIN_PERIOD
        try:
            # Checks take their turn: a burst (every session poked at once) must not take
            # the slots requests need, nor fail for want of one (max_concurrent_checks).
            async with watcher.slots(self.loop):
                for requirement in list(self.connections):
                    decision = await client.check(self.credentials, requirement)
                    delay = min(delay, self._judge(requirement, decision))
        except Exception:  # pragma: no cover - defensive: check() decides, never raises
            watcher.failures += 1
            delay = MIN_PERIOD
        finally:
            self.task = None
        if self.running and self.connections:
            entry = client._entries.get(self.key)
            if entry is not None:  # re-checked when the cached answer runs out
                delay = min(delay, entry[0] - client._clock())
            self.schedule(0.0 if self.again else max(delay, MIN_PERIOD))

    def _judge(self, requirement: Requirement, decision: Decision) -> float:
        """Close what *decision* ends; return the seconds until the next check it asks for."""
        client = self.watcher.client
        now = client._timer()
        ttl = client.config.cache_ttl
        if decision.outcome is Outcome.ALLOW:
            if self.logout is not None and client._clock() >= self.logout:
                self.logout = None  # Kratos still shows it after the logout's hold
            lapse = lapse_of(decision.session, requirement, now, ttl)
            self.lapses[requirement] = lapse
            return lapse - now + _AFTER_LAPSE
        if decision.outcome is Outcome.UNAVAILABLE:
            lapse = self.lapses.get(requirement, now)
            if decision.cause == BUSY and now < lapse:
                # No room for the check in this process (max_concurrent_checks), Kratos
                # not asked: again soon, not when Kratos would be (a revoked session must
                # not stay open for want of a slot once one frees).
                retry = MIN_PERIOD * (1.0 + random.random() / 2)  # noqa: S311 - spread only
                return min(retry, lapse - now + _AFTER_LAPSE)
            if self.logout is not None:
                # invalidate() named it: a logout, which an outage does not undo.
                target = login_url(client.config, None)
                decision = Decision(Outcome.LOGIN, None, target, requirement=requirement)
            elif now < lapse:
                # Kratos unreachable: what we knew still vouches until it lapses.
                retry = float(decision.retry_after or DEFAULT_RETRY_AFTER)
                return min(retry, lapse - now + _AFTER_LAPSE)
        for connection in list(self.connections.get(requirement, ())):
            connection.close(decision)
        return ttl


class Watcher:
    """The watched connections of one client (one cache), by session."""

    def __init__(self, client: AsyncKratosClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._groups: dict[tuple[bytes, Any], _Group] = {}
        self._slots: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        #: Checks that raised (never expected: ``check`` decides, it does not raise).
        self.failures = 0

    def slots(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        """Return *loop*'s semaphore of checks: half of ``max_concurrent_checks`` at once."""
        with self._lock:
            slots = self._slots.get(loop)
            if slots is None:
                size = max(1, self.client.config.max_concurrent_checks // 2)
                slots = self._slots[loop] = asyncio.Semaphore(size)
            return slots

    def watch(
        self,
        credentials: Credentials,
        requirement: Requirement,
        session: Session | None,
        on_close: OnClose,
        return_to: Callable[[], str | None] | None = None,
    ) -> Connection:
        """Watch a connection allowed for *session*; call on the connection's event loop.

        *on_close* is called (on that loop, once) with the decision that ends it and the
        URL to send the browser to; the connection is unwatched by then.
        """
        loop = asyncio.get_running_loop()
        key = session_key(credentials)
        now = self.client._timer()
        with self._lock:
            group = self._groups.get((key, loop))
            new = group is None
            if group is None:
                group = self._groups[key, loop] = _Group(self, key, credentials, loop)
            connection = Connection(group, requirement, on_close, return_to)
            group.connections.setdefault(requirement, set()).add(connection)
        lapse = lapse_of(session, requirement, now, self.client.config.cache_ttl)
        group.lapses.setdefault(requirement, lapse)
        if new:
            entry = self.client._entries.get(key)
            delay = self.client.config.cache_ttl or MIN_PERIOD
            if entry is not None:
                delay = min(delay, entry[0] - self.client._clock())
            group.schedule(max(min(delay, lapse - now + _AFTER_LAPSE), MIN_PERIOD))
        elif group.handle is not None and lapse - now + _AFTER_LAPSE < group.handle.when() - (
            loop.time()
        ):
            group.schedule(max(lapse - now + _AFTER_LAPSE, MIN_PERIOD))
        return connection

    def unwatch(self, connection: Connection) -> None:
        """Stop watching *connection* (it ended); the last of a session stops its timer."""
        connection.closed = True
        group = connection.group
        with self._lock:
            same = group.connections.get(connection.requirement)
            if same is None:
                return
            same.discard(connection)
            if not same:
                del group.connections[connection.requirement]
                group.lapses.pop(connection.requirement, None)
            if group.connections:
                return
            group.running = False
            if self._groups.get((group.key, group.loop)) is group:
                del self._groups[group.key, group.loop]
        if group.handle is not None:
            group.handle.cancel()
            group.handle = None

    def poke(self, key: bytes | None, logout: bool = False) -> None:
        """Check the connections of *key*'s session at once (``None``: every session).

        *logout*: ``invalidate()`` named the session, here or on another instance; a check
        that cannot reach Kratos then closes its connections as logged out.
        Thread-safe: the shared cache's listener calls it from its own thread.
        """
        with self._lock:
            if key is None:
                groups = list(self._groups.values())
            else:
                groups = [g for (k, _), g in list(self._groups.items()) if k == key]
        for group in groups:
            try:
                group.loop.call_soon_threadsafe(group.recheck_now, logout)
            except RuntimeError:  # its loop is closed: nothing of it is open any more
                self.unwatch_group(group)

    def unwatch_group(self, group: _Group) -> None:
        """Forget *group* (its loop closed under it)."""
        with self._lock:
            group.running = False
            if self._groups.get((group.key, group.loop)) is group:
                del self._groups[group.key, group.loop]

    def counts(self) -> tuple[int, int]:
        """Return how many sessions and connections are watched (for tests and benchmarks)."""
        with self._lock:
            groups = list(self._groups.values())
        return len(groups), sum(len(s) for g in groups for s in g.connections.values())


# A watcher per client cache: Django's blocking and awaitable clients share one cache, and a
# logout through either must reach the connections.
_WATCHERS: weakref.WeakKeyDictionary[Any, Watcher] = weakref.WeakKeyDictionary()
_WATCHERS_LOCK = threading.Lock()


def watcher_for(client: AsyncKratosClient) -> Watcher:
    """Return the watcher of *client*'s cache, made on first use."""
    cache = client._cache
    watcher = _WATCHERS.get(cache)
    if watcher is None:
        with _WATCHERS_LOCK:
            watcher = _WATCHERS.get(cache)
            if watcher is None:
                watcher = _WATCHERS[cache] = Watcher(client)
    return watcher


def poke(cache: Any, key: bytes | None, logout: bool = False) -> None:
    """Re-check at once the connections watched through *cache* for *key* (see ``Watcher.poke``)."""
    watcher = _WATCHERS.get(cache) if _WATCHERS else None
    if watcher is not None:
        watcher.poke(key, logout)
