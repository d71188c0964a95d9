"""KratosClient and AsyncKratosClient: the only code that talks to Kratos.

Both drive the same plans from ``_core``; they differ only in how they send and wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _observe
from ._cache import MISSING, AsyncFlights, Flights, TTLCache
from ._config import KratosConfig
from ._core import (
    Decision,
    Fetch,
    Plan,
    Requirement,
    RequirementLike,
    ReturnTo,
    allowed_from_cache,
    check_plan,
    logout_plan,
    session_key,
    whoami_fetch,
    whoami_plan,
)
from ._models import Credentials, Session
from .exceptions import ConfigurationError, KratosAALError, KratosUnavailable

__all__ = ["AsyncKratosClient", "KratosClient"]

T = TypeVar("T")
logger = logging.getLogger("kratos_aal")


def _no_cookies() -> CookieJar:
    # Our own HTTP client keeps no cookie Kratos sets (a refreshed session cookie, a
    # CSRF cookie), so nothing of one user can ride along with another's request.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _unavailable(error: Exception) -> KratosUnavailable:
    # The type name only: a transport's message may quote the request.
    return KratosUnavailable(f"Kratos did not answer ({type(error).__name__})")


class _BaseClient:
    def __init__(self, config: KratosConfig, timer: Callable[[], float] | None) -> None:
        if not isinstance(config, KratosConfig):
            raise TypeError("config must be a KratosConfig")
        self.config = config
        self._timer = timer or time.time
        self._cache = TTLCache(config.cache_maxsize, self._timer)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._timer(), timezone.utc)

    def _recheck(self, effect: Fetch[Any]) -> Callable[[], Any]:
        if effect.refresh:
            return lambda: MISSING
        return lambda: self._cache.get(effect.key)

    def _store(self, effect: Fetch[T], response: httpx.Response) -> T:
        value, ttl = effect.parse(response, self._timer())
        self._cache.put(effect.key, value, ttl)
        for key, learned, learned_ttl in effect.learn(value) if effect.learn else ():
            self._cache.put(key, learned, learned_ttl)
        return value

    def _from_cache(self, credentials: Credentials, requirement: Requirement) -> Decision | None:
        if not credentials:
            return None
        cached = self._cache.get(session_key(credentials))
        if cached is MISSING:
            return None
        return _observe.fast_hit(allowed_from_cache(self.config, cached, requirement, self._now()))

    def _check(
        self, credentials: Credentials, requirement: Requirement, return_to: ReturnTo
    ) -> Plan[Decision]:
        return check_plan(self.config, credentials, requirement, return_to, self._now)

    def invalidate(self, credentials: Credentials) -> None:
        """Forget the cached session for *credentials*; call it from your logout view."""
        if credentials:
            self._cache.pop(whoami_fetch(self.config, credentials).key)

    def clear_cache(self) -> None:
        """Forget every cached session and second-factor answer."""
        self._cache.clear()


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
    """

    def __init__(
        self,
        config: KratosConfig,
        *,
        http_client: httpx.Client | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(config, timer)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=config.timeout, follow_redirects=False, cookies=_no_cookies()
        )
        self._flights = Flights()

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

        Raises:
            KratosUnavailable: Kratos could not answer.
        """
        self.invalidate(credentials)
        return self._run(logout_plan(self.config, credentials, return_to))

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
            hit = self._cache.get(effect.key)
            _observe.cache_lookup("local", hit is not MISSING)
            if hit is not MISSING:
                return hit, True
        return self._flights.run(effect.key, lambda: self._load(effect), self._recheck(effect))

    def _load(self, effect: Fetch[T]) -> T:
        try:
            response = _observe.send(self._http.send, effect.request())
        except Exception as exc:
            raise _unavailable(exc) from None
        return self._store(effect, response)

    def close(self) -> None:
        """Close the HTTP client this client made (not an injected one)."""
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
    """

    def __init__(
        self,
        config: KratosConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(config, timer)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=config.timeout, follow_redirects=False, cookies=_no_cookies()
        )
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
            hit = self._cache.get(effect.key)
            _observe.cache_lookup("local", hit is not MISSING)
            if hit is not MISSING:
                return hit, True
        return await self._flights.run(
            effect.key, lambda: self._load(effect), self._recheck(effect)
        )

    async def _load(self, effect: Fetch[T]) -> T:
        try:
            response = await _observe.asend(self._http.send, effect.request())
        except Exception as exc:
            raise _unavailable(exc) from None
        return self._store(effect, response)

    async def aclose(self) -> None:
        """Close the HTTP client this client made (not an injected one)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncKratosClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
