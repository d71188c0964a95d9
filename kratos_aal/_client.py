"""KratosClient and AsyncKratosClient: the only code that talks to Kratos.

Both drive the same plans (from ``_core``, ``_base`` and ``_shared``) with the drivers of
``_runners``; they differ only in how they send and wait.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _calls, _exchange, _shared
from ._base import _BaseClient, _log_decision
from ._cache import AsyncFlights, Flights
from ._config import KratosConfig
from ._core import Fetch, Plan, logout_plan, whoami_plan
from ._credentials import Credentials
from ._deadline import bound_by_deadline
from ._decision import Decision, Requirement, RequirementLike, ReturnTo
from ._entries import from_cache
from ._models import Session
from ._pools import LoopPools, no_cookies
from ._runners import adrive, drive
from ._store import SharedCache
from .exceptions import ConfigurationError, KratosAALError

__all__ = ["AsyncKratosClient", "KratosClient"]

T = TypeVar("T")

# ---------------------------------------------------------------- hook: forked workers
# gunicorn --preload (and any fork after a client was used) copies a client into every
# worker: the parent's exchange threads are gone there, and a pooled connection to
# Kratos would be one socket shared by every worker, their requests and answers
# interleaved (another user's answer read for this one's request). A child starts with
# threads, HTTP connections and in-flight lookups of its own.
_BLOCKING_CLIENTS: weakref.WeakSet[KratosClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _exchange._EXCHANGES.after_fork()
    _calls._CALLS.after_fork()
    for client in list(_BLOCKING_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system has it
    os.register_at_fork(after_in_child=_after_fork_in_child)
# ---------------------------------------------------------------- end of hook

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
        shared_cache: SharedCache | None = None,
    ) -> None:
        super().__init__(config, timer, shared_cache, http_client)
        self._http = http_client or self._new_http()
        self._flights = Flights()
        _BLOCKING_CLIENTS.add(self)  # hook: forked workers

    def _new_http(self) -> httpx.Client:
        return bound_by_deadline(
            httpx.Client(timeout=self.config.timeout, follow_redirects=False, cookies=no_cookies())
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
        return self._run(self._signing_out(credentials, return_to))

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
        return drive(plan, self._fetch, KratosAALError)

    def _fetch(self, effect: Fetch[Any]) -> tuple[Any, bool]:
        hit = self._local(effect)
        if hit is not None:
            return hit
        value, cached = self._flights.run(
            effect.key, lambda: self._load(effect), self._recheck(effect)
        )
        return value, cached or from_cache(value)  # hook: a shared hit is cached

    def _load(self, effect: Fetch[T]) -> T:
        return drive(self._loading(effect), self._step, BaseException)

    def _step(self, step: _shared.Step) -> Any:
        if step[0] is _shared.ASK:
            return self._ask(step[1])
        assert self._shared is not None  # only the shared tier's plan takes other steps
        return self._shared.perform(step)

    def _ask(self, effect: Fetch[T]) -> tuple[T, float]:
        # Only the call that goes to Kratos takes a slot: requests that wait for one
        # already under way for the same key (Flights) add no call.
        _calls._CALLS.take(self.config.max_concurrent_checks)
        try:
            response = _exchange.exchange(
                self._http, effect.request(), self.config.timeout, self.config.public_url
            )
        finally:
            _calls._CALLS.give()
        return self._answer(self._http, response, effect)

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


class AsyncKratosClient(_BaseClient, LoopPools):
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
        shared_cache: SharedCache | None = None,
    ) -> None:
        super().__init__(config, timer, shared_cache, http_client)
        self._init_pools(http_client)  # see _pools
        self._flights = AsyncFlights()

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
        return await self._run(self._signing_out(credentials, return_to))

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
        return await adrive(plan, self._fetch, KratosAALError)

    async def _fetch(self, effect: Fetch[Any]) -> tuple[Any, bool]:
        hit = self._local(effect)
        if hit is not None:
            return hit
        value, cached = await self._flights.run(
            effect.key, lambda: self._load(effect), self._recheck(effect)
        )
        return value, cached or from_cache(value)  # hook: a shared hit is cached

    async def _load(self, effect: Fetch[T]) -> T:
        return await adrive(self._loading(effect), self._step, BaseException)

    async def _step(self, step: _shared.Step) -> Any:
        if step[0] is _shared.ASK:
            return await self._ask(step[1])
        assert self._shared is not None  # only the shared tier's plan takes other steps
        return await self._shared.aperform(step)

    async def _ask(self, effect: Fetch[T]) -> tuple[T, float]:
        loop = asyncio.get_running_loop()
        _calls._CALLS.take(self.config.max_concurrent_checks, loop)  # see KratosClient._ask
        try:
            http = await self._http_client()
            if http is None:  # a loop that keeps no pool: a client for this exchange alone
                async with self._new_http() as http:
                    return await self._exchange(http, effect)
            return await self._exchange(http, effect)
        finally:
            _calls._CALLS.give(loop)

    async def _exchange(self, http: httpx.AsyncClient, effect: Fetch[T]) -> tuple[T, float]:
        # The whole exchange, not each read: see _exchange.
        url = self.config.public_url
        response = await _exchange.aexchange(http, effect.request, self.config.timeout, url)
        return self._answer(http, response, effect)

    async def aclose(self) -> None:
        """Close the HTTP clients this client made (not an injected one).

        The client stays usable: the next call opens a new connection pool, so a
        middleware survives a lifespan shutdown followed by a new startup.
        """
        if self._shared is not None:  # hook: stop listening for logouts
            await asyncio.to_thread(self._shared.close)
        await self._close_pools()

    async def __aenter__(self) -> AsyncKratosClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
