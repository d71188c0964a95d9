"""What both clients share: configuration, the in-process cache, and the plans they drive."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx

from . import _diagnose, _live, _observe, _shared
from ._cache import MISSING, Tombstones, TTLCache
from ._cached_session import CachedSession, allowed_from_cache, cached_session
from ._config import KratosConfig
from ._core import (
    LEARNED,
    Fetch,
    Plan,
    check_plan,
    logout_key,
    logout_plan,
    second_factor_key,
    session_key,
)
from ._credentials import Credentials
from ._decision import Decision, Outcome, Requirement, ReturnTo
from ._exchange import forget_cookies
from ._kratos_api import WhoamiResult, rebase
from ._models import AAL
from ._store import SharedCache

__all__: list[str] = []

T = TypeVar("T")
logger = logging.getLogger("kratos_aal")


class _BaseClient:
    def __init__(
        self,
        config: KratosConfig,
        timer: Callable[[], float] | None,
        shared_cache: SharedCache | None,
        http_client: httpx.Client | httpx.AsyncClient | None,
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
        self._owns_http = http_client is None

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
        # Hook: open connections of that session are checked now; a key is a logout elsewhere.
        _live.poke(self._cache, key, logout=key is not None)

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

    def _signing_out(self, credentials: Credentials, return_to: str) -> Plan[str | None]:
        """The plan of ``_sign_out_link``: the logout URL the loop page links.

        Cached by session alone, its return_to put in afterwards: without app_url the
        page's home comes from the Host header, which the client writes.
        """
        plan = logout_plan(self.config, credentials, None, self.config.cache_ttl)
        if self._cache.get(logout_key(credentials, None)) is MISSING:
            # Not again while the link is cached (a replay).
            self._invalidate(credentials, factors=False)
        return rebase(self.config, (yield from plan), return_to)

    def _local(self, effect: Fetch[Any]) -> tuple[Any, bool] | None:
        """Return ``(value, True)`` when the local tier holds *effect*'s value, else ``None``."""
        if effect.refresh:
            return None
        hit = self._cached(effect.key)
        _observe.cache_lookup("local", hit is not MISSING)
        return None if hit is MISSING else (hit, True)

    def _loading(self, effect: Fetch[T]) -> Generator[_shared.Step, Any, T]:
        """The plan of a local miss: the shared tier's, else Kratos's answer (kept here)."""
        since = self._tombs.generation  # a logout after this: the answer is not kept
        if self._shared is not None:  # hook: a local miss asks the shared tier first
            return (yield from self._shared.loading(effect, since))
        value, ttl = yield (_shared.ASK, effect)
        self._keep(effect, value, ttl, since)
        return value  # type: ignore[no-any-return]

    def _answer(
        self, http: httpx.Client | httpx.AsyncClient, response: httpx.Response, effect: Fetch[T]
    ) -> tuple[T, float]:
        """Read Kratos's *response* to *effect*: its value and how long to keep it."""
        forget_cookies(http, response)
        _diagnose.answered(self.config.public_url)
        return effect.parse(response, self._timer())

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
            _live.poke(self._cache, key, logout=True)  # hook: its open connections: checked now
            if self._shared is not None:  # hook: and on every other instance
                self._shared.invalidate(credentials)

    def clear_cache(self) -> None:
        """Forget every cached session and second-factor answer."""
        self._cache.clear()
        self._misses.clear()


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
