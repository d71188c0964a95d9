"""KratosClient and AsyncKratosClient: the only code that talks to Kratos.

Both drive the same plans from ``_core``; they differ only in how they send and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import queue
import ssl
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timezone
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _diagnose, _observe, _shared
from ._cache import MISSING, AsyncFlights, Flights, Tombstones, TTLCache
from ._config import KratosConfig
from ._core import (
    LEARNED,
    CachedSession,
    Decision,
    Fetch,
    Outcome,
    Plan,
    Requirement,
    RequirementLike,
    ReturnTo,
    WhoamiResult,
    allowed_from_cache,
    cached_session,
    check_plan,
    logout_key,
    logout_plan,
    rebase,
    second_factor_key,
    session_key,
    whoami_plan,
)
from ._deadline import DEADLINE, bound_by_deadline
from ._models import AAL, Credentials, Session
from .exceptions import ConfigurationError, KratosAALError, KratosUnavailable

__all__ = ["AsyncKratosClient", "KratosClient"]

T = TypeVar("T")
logger = logging.getLogger("kratos_aal")


def _no_cookies() -> CookieJar:
    # Our own HTTP client keeps no cookie Kratos sets (a refreshed session cookie, a
    # CSRF cookie), so nothing of one user can ride along with another's request.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _unavailable(error: Exception, url: str) -> KratosUnavailable:
    # The type name only: a transport's message may quote the request.
    kind, words = _diagnose.cause_of(error)
    _diagnose.unreachable(url, kind, words)
    return KratosUnavailable(f"Kratos did not answer ({type(error).__name__})", cause=kind)


def _too_slow(timeout: float, url: str) -> KratosUnavailable:
    _diagnose.unreachable(url, _diagnose.TIMEOUT, f"it did not answer within {timeout:g} s")
    return KratosUnavailable(f"Kratos did not answer within {timeout:g} s", cause=_diagnose.TIMEOUT)


def _forget_cookies(http: httpx.Client | httpx.AsyncClient, response: httpx.Response) -> None:
    # httpx files every Set-Cookie into the client's jar: a user's refreshed session
    # cookie or CSRF cookie would then ride along with whatever else uses an injected
    # client. Drop exactly what this answer set; the client's other cookies stay.
    if "set-cookie" not in response.headers:
        return
    for cookie in response.cookies.jar:
        with contextlib.suppress(KeyError):  # already gone
            http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)


class _Exchanges:
    """Daemon threads that run blocking exchanges, kept for the next one.

    Starting a thread per cache miss costs more CPU than the exchange around it. A job
    goes to an idle thread, or to a new one when none is idle (one that hangs on a slow
    Kratos holds only its own job up); at most ``keep`` idle threads wait for more, each
    for ``linger`` seconds: a burst of misses leaves no threads behind once it is over.
    """

    def __init__(self, keep: int = 8, linger: float = 2.0) -> None:
        self._keep = keep
        self._linger = linger
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run *job* on an idle thread, or on a new one; never waits."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
            # Queued under the lock: an idle thread that gives up sees every job it was
            # counted for (see _work).
            self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="kratos-aal-exchange", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    # Idle threads number _idle plus the jobs queued: none queued, this
                    # one is counted in _idle, and no job waits for it.
                    if self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job()  # the job catches its own errors
            with self._lock:
                if self._idle >= self._keep:
                    return
                self._idle += 1

    def after_fork(self) -> None:
        """Start afresh in a forked child, which has none of its parent's threads.

        Counted as idle, they would be handed jobs that no thread ever runs.
        """
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0


_EXCHANGES = _Exchanges()


class _Calls:
    """The calls to Kratos under way in this process, from any client, thread or event loop.

    A call that would make more than its client's ``max_concurrent_checks`` fails at
    once, never waits: with Kratos slow, requests that wait for it hold a worker (a
    thread, a connection) each, until none is left for pages that need no Kratos at all.
    Counted per process, not per client: an app with two clients (a Flask extension and
    a WSGI middleware) has as many threads as one.

    A call on an event loop is counted with its loop: a loop closed under it (closed
    without cancelling its tasks, after the request gave up) never runs the call's end,
    so its calls are no longer counted once the cap is reached.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, int] = {}

    def take(self, limit: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one more call (of *loop*), when fewer than *limit* are under way.

        Raises:
            KratosUnavailable: *limit* calls are under way already.
        """
        with self._lock:
            if self._busy >= limit:
                for closed in [held for held in self._loops if held.is_closed()]:
                    self._busy -= self._loops.pop(closed)
            if self._busy >= limit:
                raise KratosUnavailable(
                    f"{limit} calls to Kratos are under way already "
                    "(max_concurrent_checks): not waiting for another"
                )
            self._busy += 1
            if loop is not None:
                self._loops[loop] = self._loops.get(loop, 0) + 1

    def give(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count one call fewer (one counted by :meth:`take` ended)."""
        with self._lock:
            if loop is not None:
                held = self._loops.get(loop)
                if held is None:  # no longer counted: its loop was closed under it
                    return
                if held == 1:
                    del self._loops[loop]
                else:
                    self._loops[loop] = held - 1
            self._busy -= 1

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent's calls never end there."""
        self._lock = threading.Lock()
        self._busy = 0
        self._loops = {}


_CALLS = _Calls()

# ---------------------------------------------------------------- hook: forked workers
# gunicorn --preload (and any fork after a client was used) copies a client into every
# worker: the parent's exchange threads are gone there, and a pooled connection to
# Kratos would be one socket shared by every worker, their requests and answers
# interleaved (another user's answer read for this one's request). A child starts with
# threads, HTTP connections and in-flight lookups of its own.
_BLOCKING_CLIENTS: weakref.WeakSet[KratosClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _EXCHANGES.after_fork()
    _CALLS.after_fork()
    for client in list(_BLOCKING_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system has it
    os.register_at_fork(after_in_child=_after_fork_in_child)
# ---------------------------------------------------------------- end of hook


class _BaseClient:
    def __init__(
        self,
        config: KratosConfig,
        timer: Callable[[], float] | None,
        shared_cache: _shared.SharedCache | None = None,
    ) -> None:
        if not isinstance(config, KratosConfig):
            raise TypeError("config must be a KratosConfig")
        self.config = config
        # Sessions expire on wall time (Kratos's expires_at), but how long an entry stays
        # cached runs on a monotonic clock: a system clock stepped back an hour must not
        # keep a revoked session allowed for an hour. A test's fake clock drives both.
        self._timer = timer or time.time
        self._clock = timer or time.monotonic
        self._cache = TTLCache(config.cache_maxsize, self._clock, prepare=cached_session)
        self._entries = self._cache.index  # the hit path's lock-free view (never rebound)
        # Whoami 401s apart: a flood of bogus cookies (a call each) evicts only its own
        # kind, never a session whose every request would then cost a call.
        self._misses = TTLCache(config.cache_maxsize, self._clock)
        self._tombs = Tombstones(config.cache_maxsize, self._clock)
        # Hook (shared cache, SPEC §5a): None without cache_url or shared_cache.
        self._shared = _shared.tier_for(config, shared_cache, self._keep, self._drop, self._timer)

    def _share_cache(self, other: _BaseClient) -> None:
        """Use *other*'s in-process cache from now on (one cache for sync and async views)."""
        self._cache, self._entries = other._cache, other._entries
        self._misses, self._tombs = other._misses, other._tombs

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._timer(), timezone.utc)

    def _recheck(self, effect: Fetch[Any]) -> Callable[[], Any]:
        if effect.refresh:
            return lambda: MISSING
        return lambda: self._cached(effect.key)

    def _cached(self, key: bytes) -> Any:
        """Return what is cached under *key* (a whoami 401 included), or ``MISSING``."""
        value = self._cache.get(key)
        return self._misses.get(key) if value is MISSING else value

    def _keep(self, effect: Fetch[T], value: T, ttl: float, since: int) -> None:
        """Cache *value*, unless the lookup that began at generation *since* met a logout."""
        ttl = self._tombs.ttl(effect.key, since, getattr(value, "session", None) is not None, ttl)
        if ttl <= 0:
            return
        if self._shared is not None:  # hook: the local copy stays in front only briefly
            ttl = self._shared.local_ttl(ttl)
        if isinstance(value, WhoamiResult) and value.session is None:
            self._cache.pop(effect.key)  # a session Kratos no longer shows
            self._misses.put(effect.key, value, ttl)
        else:
            self._misses.pop(effect.key)
            self._cache.put(effect.key, value, ttl)
        for key, learned, learned_ttl in effect.learn(value) if effect.learn else ():
            self._cache.put(key, learned, learned_ttl)

    def _drop(self, key: bytes | None) -> None:
        # Hook: the shared tier heard of a logout elsewhere (None: it may have missed some).
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key)

    def cached_allow(self, key: bytes | None, requirement: Requirement) -> CachedSession | None:
        """Return the cached session under *key* when it alone allows *requirement*.

        The hit path: one lock-free read of the cache's index, an int comparison and two
        float ones (the entry's time to live, monotonic; the session's ``expires_at``, wall
        time, in case the wall clock jumped ahead). ``None`` means "go the whole way"
        (which asks Kratos again before any denial); only a bare AAL is judged here.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        hit = entry[2]
        if (
            hit is None
            or hit.rank < requirement.hit_rank
            or entry[0] <= self._clock()
            or hit.expires <= self._timer()
        ):
            return None
        entry[3] = True  # a second chance at eviction (see TTLCache)
        if _observe.STATE.metrics is not None:
            _observe.cache_lookup("local", True)
        return hit  # type: ignore[no-any-return]

    def _from_cache(self, credentials: Credentials, requirement: Requirement) -> Decision | None:
        if not credentials:
            return None
        key = session_key(credentials)
        hit = self.cached_allow(key, requirement)
        if hit is not None:
            return hit.allowed(requirement)
        cached = self._cache.get(key)
        if cached is MISSING:
            return None
        return _observe.fast_hit(allowed_from_cache(self.config, cached, requirement, self._now()))

    def _check(
        self, credentials: Credentials, requirement: Requirement, return_to: ReturnTo
    ) -> Plan[Decision]:
        return check_plan(self.config, credentials, requirement, return_to, self._now)

    def invalidate(self, credentials: Credentials) -> None:
        """Forget the cached session for *credentials*; call it from your logout view.

        From then on no cache allows *credentials* until Kratos has been asked afresh:
        a lookup under way keeps nothing, and for ``cache_ttl`` seconds a session Kratos
        still shows is kept for one request's checks only (``HOLD_TTL``): the browser
        reaches Kratos's logout only after the app answered, and a request in between
        must not cache the session again. With a shared cache, on every instance.

        What an aal2 session taught about the identity's second factors goes too: a user
        who removed their authenticator app and signs in again is sent to pair one, not to
        a step-up they cannot pass. What Kratos answered to a probe stays: a client may
        call the logout view at will, and each logout must not cost a probe.
        """
        self._invalidate(credentials, factors=True)

    def _invalidate(self, credentials: Credentials, *, factors: bool) -> None:
        # The loop page ends the session too, but keeps the factors: it is shown to a
        # browser that loops, not to a user who changed their second factors.
        if credentials:
            key = session_key(credentials)
            self._tombs.mark(key, self.config.cache_ttl)
            session = getattr(self._cache.get(key), "session", None)
            if factors and session is not None:
                factor_key = second_factor_key(session)
                if self._cache.get(factor_key) is LEARNED:
                    self._cache.pop(factor_key)
            self._cache.pop(key)
            if self._shared is not None:  # hook: and on every other instance
                self._shared.invalidate(credentials)

    def clear_cache(self) -> None:
        """Forget every cached session and second-factor answer."""
        self._cache.clear()
        self._misses.clear()


ClientT = TypeVar("ClientT", "KratosClient", "AsyncKratosClient")


def client_for(
    owner: str, kind: type[ClientT], config: KratosConfig | None, client: ClientT | None
) -> tuple[ClientT, bool]:
    """Return the client a middleware uses, and whether it made it (and so closes it).

    Raises:
        ConfigurationError: neither or both of *config* and *client*, or a client of the
            wrong kind; the message names *owner*.
    """
    if (config is None) == (client is None):
        raise ConfigurationError(f"{owner} needs either config= or client=, not both")
    if client is None:
        return kind(config), True  # type: ignore[arg-type]
    if not isinstance(client, kind):
        raise ConfigurationError(f"{owner} client= must be an instance of {kind.__name__}")
    return client, False


def _advance(
    plan: Plan[Any], reply: tuple[Any, bool] | None, error: KratosAALError | None
) -> tuple[bool, Any]:
    """Resume *plan* with a reply or an error: ``(True, result)`` or ``(False, next effect)``."""
    try:
        step = plan.throw(error) if error is not None else plan.send(reply)  # type: ignore[arg-type]
    except StopIteration as stop:
        return True, stop.value
    return False, step


def _log_decision(decision: Decision) -> Decision:
    if (
        decision.outcome is Outcome.STEP_UP
        and decision.session is None  # Kratos withheld the session (session_aal2_required)
        and decision.requirement is not None
        and decision.requirement.aal <= AAL.AAL1
    ):
        _diagnose.highest_available()
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "kratos_aal decision: %s (session aal %s)",
            decision.outcome.value,
            decision.session.aal.value if decision.session else "none",
        )
    return decision


class KratosClient(_BaseClient):
    """Look up Kratos sessions and decide requests, blocking.

    Args:
        config: Where Kratos is.
        http_client: An ``httpx.Client`` to send with (for transports and tests). You
            keep ownership: :meth:`close` does not close it.
        timer: Returns the current POSIX time in seconds; tests pass a fake clock.
        shared_cache: Where several instances share whoami answers, instead of the Redis
            of ``config.cache_url``; needs ``cache_key_secret``.

    .. versionadded:: 0.2 *shared_cache*
    """

    def __init__(
        self,
        config: KratosConfig,
        *,
        http_client: httpx.Client | None = None,
        timer: Callable[[], float] | None = None,
        shared_cache: _shared.SharedCache | None = None,
    ) -> None:
        super().__init__(config, timer, shared_cache)
        self._owns_http = http_client is None
        self._http = http_client or self._new_http()
        self._flights = Flights()
        _BLOCKING_CLIENTS.add(self)  # hook: forked workers

    def _new_http(self) -> httpx.Client:
        return bound_by_deadline(
            httpx.Client(timeout=self.config.timeout, follow_redirects=False, cookies=_no_cookies())
        )

    def _after_fork(self) -> None:
        """Drop what a forked child shares with its parent (see ``_after_fork_in_child``)."""
        self._flights = Flights()  # lookups the parent had in flight never end here
        if self._owns_http:
            # Not closed: closing would speak on the parent's connections.
            self._http = self._new_http()

    def whoami(self, credentials: Credentials) -> Session | None:
        """Return the session for *credentials*, or ``None`` when Kratos knows none.

        Raises:
            StepUpRequired: Kratos withholds the session until a second factor is given.
            KratosUnavailable: Kratos could not vouch for the session either way.
        """
        return self._run(whoami_plan(self.config, credentials))

    def logout_url(self, credentials: Credentials, return_to: str | None = None) -> str | None:
        """Return a browser logout URL (under ``browser_url``) and forget the cached session.

        ``None`` when the request has no session cookie or Kratos knows no session.
        The session is invalidated as by :meth:`invalidate`.

        Raises:
            KratosUnavailable: Kratos could not answer.
        """
        self.invalidate(credentials)
        return self._run(logout_plan(self.config, credentials, return_to))

    def _sign_out_link(self, credentials: Credentials, return_to: str) -> str | None:
        """Return the logout URL the loop page links, asking Kratos at most once per ``cache_ttl``.

        The session is invalidated as by :meth:`invalidate` (the click on the link must
        end it at once) when the link is made. Kratos's logout token lives as long as the
        session, so the link is cached: a loop page shown again (its signed hop count
        replayed) costs no Kratos call of its own and invalidates nothing again.

        Raises:
            KratosUnavailable: Kratos could not answer.
        """
        # Cached by session alone, its return_to put in afterwards: without app_url the
        # page's home comes from the Host header, which the client writes.
        plan = logout_plan(self.config, credentials, None, self.config.cache_ttl)
        if self._cache.get(logout_key(credentials, None)) is MISSING:
            # Not again while the link is cached (a replay).
            self._invalidate(credentials, factors=False)
        return rebase(self.config, self._run(plan), return_to)

    def check(
        self,
        credentials: Credentials,
        requirement: RequirementLike = "aal2",
        return_to: ReturnTo = None,
    ) -> Decision:
        """Decide whether a request with *credentials* meets *requirement*.

        Never raises for Kratos trouble: that is an ``UNAVAILABLE`` decision.
        *return_to* is where Kratos sends the browser back to afterwards; pass a
        callable to build it only when a denial needs it.
        """
        rule = Requirement.parse(requirement)
        decision = self._from_cache(credentials, rule)
        if decision is None:
            decision = self._run(self._check(credentials, rule, return_to))
        return _log_decision(decision)

    def _run(self, plan: Plan[T]) -> T:
        reply: tuple[Any, bool] | None = None
        error: KratosAALError | None = None
        while True:
            done, step = _advance(plan, reply, error)
            if done:
                return step  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = self._fetch(step)
            except KratosAALError as exc:
                error = exc

    def _fetch(self, effect: Fetch[Any]) -> tuple[Any, bool]:
        if not effect.refresh:
            hit = self._cached(effect.key)
            _observe.cache_lookup("local", hit is not MISSING)
            if hit is not MISSING:
                return hit, True
        value, cached = self._flights.run(
            effect.key, lambda: self._load(effect), self._recheck(effect)
        )
        return value, cached or _shared.from_cache(value)  # hook: a shared hit is cached

    def _load(self, effect: Fetch[T]) -> T:
        since = self._tombs.generation  # a logout after this: the answer is not kept
        if self._shared is not None:  # hook: a local miss asks the shared tier first
            return self._shared.load(effect, self._ask, since)
        value, ttl = self._ask(effect)
        self._keep(effect, value, ttl, since)
        return value

    def _ask(self, effect: Fetch[T]) -> tuple[T, float]:
        # Only the call that goes to Kratos takes a slot: requests that wait for one
        # already under way for the same key (Flights) add no call.
        _CALLS.take(self.config.max_concurrent_checks)
        try:
            response = self._exchange(effect.request())
        finally:
            _CALLS.give()
        _forget_cookies(self._http, response)
        _diagnose.answered(self.config.public_url)
        return effect.parse(response, self._timer())

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        # httpx's timeout bounds each read, so a body dripped a byte at a time could hold
        # a request for ever. The exchange runs on a helper thread and this one waits at
        # most `timeout` for it: what Kratos does cannot hold a request longer. The
        # helper's reads end by the same deadline (see _deadline), so that it does not
        # read on after the request has given up: one thread per dripped answer, unbounded.
        timeout = self.config.timeout
        deadline = time.monotonic() + timeout
        outcome: list[Any] = []
        done = threading.Event()
        context = contextvars.copy_context()

        def send() -> httpx.Response:
            DEADLINE.set(deadline)
            return _observe.send(self._http.send, request)

        def run() -> None:
            try:
                outcome.append(context.run(send))
            except Exception as exc:
                outcome.append(exc)
            finally:
                done.set()

        _EXCHANGES.submit(run)
        if not done.wait(timeout):
            raise _too_slow(timeout, self.config.public_url)
        result = outcome[0]
        if isinstance(result, Exception):
            raise _unavailable(result, self.config.public_url) from None
        return result  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the HTTP client this client made (not an injected one)."""
        if self._shared is not None:  # hook: stop listening for logouts
            self._shared.close()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KratosClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncKratosClient(_BaseClient):
    """Look up Kratos sessions and decide requests, awaitable.

    The same methods as :class:`KratosClient`, as coroutines; ``aclose()`` closes.
    Works on any event loop, in any order (Django under WSGI and Flask run a new loop
    per request): the client keeps one connection pool per running loop and closes it
    when that loop shuts down; after ``aclose()`` the next call opens a new pool. An
    injected *http_client* is yours: it stays bound to the loop it first ran on.
    """

    def __init__(
        self,
        config: KratosConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        timer: Callable[[], float] | None = None,
        shared_cache: _shared.SharedCache | None = None,
    ) -> None:
        super().__init__(config, timer, shared_cache)
        self._owns_http = http_client is None
        self._injected = http_client
        # A pooled connection belongs to the event loop that opened it, and Django under
        # WSGI (async_to_sync), Flask and test clients run a new loop per request: one
        # HTTP client per running loop, each closed when its loop shuts down. The pool is
        # kept on the loop itself (see _pools_on), so that it goes when the loop goes;
        # here only weak references, to close them all in aclose().
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._loops_lock = threading.Lock()
        self._flights = AsyncFlights()
        # Made once, for every loop's client: building one (the CA bundle) took 24 ms and
        # ~1 MB of short-lived allocations, per request under Django's WSGI handler.
        self._tls: ssl.SSLContext | None = None

    def _new_http(self) -> httpx.AsyncClient:
        with self._loops_lock:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            tls = self._tls
        return httpx.AsyncClient(
            timeout=self.config.timeout, follow_redirects=False, cookies=_no_cookies(), verify=tls
        )

    async def _http_client(self) -> httpx.AsyncClient | None:
        """Return the HTTP client of the running loop, or ``None`` when the loop keeps none."""
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        pools = _pools_on(loop)
        if pools is None:
            return None
        with self._loops_lock:
            found = pools.get(self)
        if found is not None:
            return found[0]
        http = self._new_http()
        # An async generator started on this loop is closed by the loop's own shutdown
        # (asyncio.run, asgiref and anyio call shutdown_asyncgens): its finally closes
        # the client's connections on the loop they belong to. Nothing runs between
        # here and the entry below (the first step does not suspend), so no other task
        # of this loop makes a second pool.
        keeper = _close_at_shutdown(http, pools, weakref.ref(self))
        await keeper.__anext__()
        with self._loops_lock:
            pools[self] = (http, keeper)
            self._loops.add(loop)
        return http

    def _forget_pool(self, pools: _Pools, http: httpx.AsyncClient) -> None:
        with self._loops_lock:
            if pools.get(self, (None,))[0] is http:  # not a newer pool made after aclose()
                del pools[self]

    async def whoami(self, credentials: Credentials) -> Session | None:
        """Return the session for *credentials*, or ``None``; see :meth:`KratosClient.whoami`."""
        return await self._run(whoami_plan(self.config, credentials))

    async def logout_url(
        self, credentials: Credentials, return_to: str | None = None
    ) -> str | None:
        """Return a browser logout URL; see :meth:`KratosClient.logout_url`."""
        self.invalidate(credentials)
        return await self._run(logout_plan(self.config, credentials, return_to))

    async def _sign_out_link(self, credentials: Credentials, return_to: str) -> str | None:
        """Return the loop page's logout URL; see :meth:`KratosClient._sign_out_link`."""
        plan = logout_plan(self.config, credentials, None, self.config.cache_ttl)
        if self._cache.get(logout_key(credentials, None)) is MISSING:
            # Not again while the link is cached (a replay).
            self._invalidate(credentials, factors=False)
        return rebase(self.config, await self._run(plan), return_to)

    async def check(
        self,
        credentials: Credentials,
        requirement: RequirementLike = "aal2",
        return_to: ReturnTo = None,
    ) -> Decision:
        """Decide a request; see :meth:`KratosClient.check`."""
        rule = Requirement.parse(requirement)
        decision = self._from_cache(credentials, rule)
        if decision is None:
            decision = await self._run(self._check(credentials, rule, return_to))
        return _log_decision(decision)

    async def _run(self, plan: Plan[T]) -> T:
        reply: tuple[Any, bool] | None = None
        error: KratosAALError | None = None
        while True:
            done, step = _advance(plan, reply, error)
            if done:
                return step  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = await self._fetch(step)
            except KratosAALError as exc:
                error = exc

    async def _fetch(self, effect: Fetch[Any]) -> tuple[Any, bool]:
        if not effect.refresh:
            hit = self._cached(effect.key)
            _observe.cache_lookup("local", hit is not MISSING)
            if hit is not MISSING:
                return hit, True
        value, cached = await self._flights.run(
            effect.key, lambda: self._load(effect), self._recheck(effect)
        )
        return value, cached or _shared.from_cache(value)  # hook: a shared hit is cached

    async def _load(self, effect: Fetch[T]) -> T:
        since = self._tombs.generation  # a logout after this: the answer is not kept
        if self._shared is not None:  # hook: a local miss asks the shared tier first
            return await self._shared.aload(effect, self._ask, since)
        value, ttl = await self._ask(effect)
        self._keep(effect, value, ttl, since)
        return value

    async def _ask(self, effect: Fetch[T]) -> tuple[T, float]:
        loop = asyncio.get_running_loop()
        _CALLS.take(self.config.max_concurrent_checks, loop)  # see KratosClient._ask
        try:
            http = await self._http_client()
            if http is None:  # a loop that keeps no pool: a client for this exchange alone
                async with self._new_http() as http:
                    return await self._exchange(http, effect)
            return await self._exchange(http, effect)
        finally:
            _CALLS.give(loop)

    async def _exchange(self, http: httpx.AsyncClient, effect: Fetch[T]) -> tuple[T, float]:
        timeout = self.config.timeout
        try:
            # The whole exchange, not each read: see KratosClient._exchange.
            response = await asyncio.wait_for(_observe.asend(http.send, effect.request()), timeout)
        except asyncio.TimeoutError:
            raise _too_slow(timeout, self.config.public_url) from None
        except Exception as exc:
            raise _unavailable(exc, self.config.public_url) from None
        _forget_cookies(http, response)
        _diagnose.answered(self.config.public_url)
        return effect.parse(response, self._timer())

    async def aclose(self) -> None:
        """Close the HTTP clients this client made (not an injected one).

        The client stays usable: the next call opens a new connection pool, so a
        middleware survives a lifespan shutdown followed by a new startup.
        """
        if self._shared is not None:  # hook: stop listening for logouts
            await asyncio.to_thread(self._shared.close)
        current = asyncio.get_running_loop()
        with self._loops_lock:
            # Read, never made, here: only a loop's own thread puts its pools on it.
            pools = [(loop, getattr(loop, _POOLS, None)) for loop in self._loops]
            self._loops.clear()
            keepers = [
                (loop, found[1])
                for loop, on_loop in pools
                if on_loop is not None and (found := on_loop.pop(self, None)) is not None
            ]
        for loop, keeper in keepers:
            if loop is current:
                await keeper.aclose()
            elif not loop.is_closed() and loop.is_running():
                # Pools of other, still running loops are closed on their own loop.
                asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)

    async def __aenter__(self) -> AsyncKratosClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


#: The attribute of an event loop that holds its pools: {client (weakly): (http, keeper)}.
_POOLS = "_kratos_aal_pools"
_Pools = weakref.WeakKeyDictionary[
    AsyncKratosClient, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
]


def _pools_on(loop: asyncio.AbstractEventLoop) -> _Pools | None:
    """Return the pools kept on *loop*, or ``None`` when *loop* takes no attribute.

    A pool refers to its loop (its connections' transports, and the keeper's finalizer,
    which is a method of the loop), so a pool held anywhere else would hold the loop, and
    everything it holds, for as long as the client lives: one loop per request under
    Django's WSGI handler. Held by the loop, loop and pools go together; the client's own
    entry goes with the client.
    """
    pools: _Pools | None = getattr(loop, _POOLS, None)
    if pools is None:
        pools = weakref.WeakKeyDictionary()
        try:
            setattr(loop, _POOLS, pools)
        except AttributeError:  # a loop without a __dict__ (none of asyncio's or uvloop's)
            return None
    return pools


async def _close_at_shutdown(
    http: httpx.AsyncClient, pools: _Pools, owner: weakref.ref[AsyncKratosClient]
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # Out of the loop's pools first: what refers to the loop then is the loop's own,
        # freed as soon as the loop is, without waiting for the cycle collector.
        client = owner()
        if client is not None:
            client._forget_pool(pools, http)
        del client
        await http.aclose()
        # A closed transport lets go of its socket in a callback of the loop: let it run
        # before the loop itself closes.
        for _ in range(3):
            await asyncio.sleep(0)
