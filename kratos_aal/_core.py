"""The plans the clients drive: sans-IO generators that ask Kratos and decide.

Nothing here sends anything. The clients in ``_client`` drive :func:`check_plan`,
a generator that yields :class:`Fetch` effects and receives their results, so the
blocking and the awaitable client share every line of logic. The requests and their
parsing are ``_kratos_api``'s, the decision ``_decision``'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx

from ._config import KratosConfig
from ._credentials import Credentials
from ._decision import (
    Decision,
    Outcome,
    Requirement,
    ReturnTo,
    _once,
    _resolve,
    decide,
    unavailable,
)
from ._kratos_api import (
    WhoamiResult,
    login_url,
    logout_request,
    parse_logout,
    parse_second_factor,
    parse_whoami,
    rebase,
    second_factor_request,
    whoami_request,
)
from ._models import AAL, Session
from .exceptions import KratosUnavailable, StepUpRequired

T = TypeVar("T")

# Second-factor answers are cached this long at most (and never longer than cache_ttl).
SECOND_FACTOR_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Fetch(Generic[T]):
    """An effect: send *request* (unless *key* is cached), parse, cache.

    The driver answers with ``(value, from_cache)``. Concurrent fetches of one *key*
    share one request. *refresh* skips the cached value.
    """

    key: bytes
    request: Callable[[], httpx.Request]
    parse: Callable[[httpx.Response, float], tuple[T, float]]
    refresh: bool = False
    #: What else the value teaches, as ``(key, value, ttl)`` entries to cache.
    learn: Callable[[T], tuple[tuple[bytes, Any, float], ...]] | None = None


Plan = Generator[Fetch[Any], tuple[Any, bool], T]


def session_key(credentials: Credentials) -> bytes:
    """Return the cache key of the whoami answer for *credentials*."""
    return b"s" + credentials.cache_key()


def whoami_fetch(
    config: KratosConfig, credentials: Credentials, *, refresh: bool = False
) -> Fetch[WhoamiResult]:
    """Return the effect that looks up *credentials* with whoami."""
    return Fetch(
        key=session_key(credentials),
        request=lambda: whoami_request(config, credentials),
        parse=lambda response, now: parse_whoami(config, response, now),
        refresh=refresh,
        learn=lambda result: _learn_second_factor(config, result.session),
    )


def second_factor_key(session: Session) -> bytes:
    """Return the cache key of what is known about *session*'s identity's second factors."""
    return b"f" + (session.identity.id if session.identity is not None else session.id).encode()


class _Learned:
    """A "yes" learned from an aal2 session rather than asked of Kratos (true, like a "yes")."""

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "LEARNED"


#: The second-factor answer an aal2 session teaches: the identity had a second factor when
#: it signed in, which it may have removed since. A logout forgets it; the answers of a
#: probe stay (forgetting them would make each logout cost a probe, a stored login flow).
LEARNED: Any = _Learned()


def _learn_second_factor(
    config: KratosConfig, session: Session | None
) -> tuple[tuple[bytes, Any, float], ...]:
    # A session that used a second factor proves the identity has one: a user who just
    # paired TOTP and logs in again is stepped up, not sent to enroll a second time.
    if session is None or session.identity is None or session.aal < AAL.AAL2:
        return ()
    return ((second_factor_key(session), LEARNED, min(config.cache_ttl, SECOND_FACTOR_TTL)),)


def logout_key(credentials: Credentials, return_to: str | None, kind: bytes = b"l") -> bytes:
    """Return the cache key of the logout URL for *credentials* that returns to *return_to*.

    *kind* keeps apart what different users of the URL cache (the loop page, templates).
    """
    back = (return_to or "").encode("utf-8", "surrogateescape")
    return kind + credentials.cache_key() + b"\0" + hashlib.sha256(back).digest()


def logout_plan(
    config: KratosConfig,
    credentials: Credentials,
    return_to: str | None,
    keep_for: float = 0.0,
    *,
    kind: bytes = b"l",
) -> Plan[str | None]:
    """Create a browser logout flow for *credentials*; cached for *keep_for* seconds.

    Kratos's logout token belongs to the session (made with it, the same in every flow),
    so a cached logout URL stays good for as long as the session does. *kind*: see
    :func:`logout_key`.
    """
    if not credentials.cookie:
        return None
    url, _ = yield Fetch(
        key=logout_key(credentials, return_to, kind),
        request=lambda: logout_request(config, credentials),
        parse=lambda response, now: (parse_logout(config, response, return_to), keep_for),
        refresh=keep_for <= 0,
    )
    return url  # type: ignore[no-any-return]


def whoami_plan(config: KratosConfig, credentials: Credentials) -> Plan[Session | None]:
    """Look up the session for *credentials*; ``None`` when there is none.

    Raises:
        StepUpRequired: Kratos withholds the session until a second factor is given.
        KratosUnavailable: Kratos could not answer.
    """
    if not credentials:
        return None
    result, _ = yield whoami_fetch(config, credentials)
    if result.step_up_to is not None:
        raise StepUpRequired(result.step_up_to)
    return result.session  # type: ignore[no-any-return]


def check_plan(
    config: KratosConfig,
    credentials: Credentials,
    requirement: Requirement,
    return_to: ReturnTo,
    now: Callable[[], datetime],
) -> Plan[Decision]:
    """Decide a request, asking Kratos again before any denial made from the cache."""
    if not credentials:
        target = login_url(config, _resolve(return_to))
        return Decision(Outcome.LOGIN, None, target, requirement=requirement)
    return_to = _once(return_to)
    try:
        result, cached = yield whoami_fetch(config, credentials)
        decision = _decide_result(config, result, requirement, return_to, now())
        if decision.outcome is not Outcome.ALLOW and cached and result.session is not None:
            # Kratos upgrades a session in place (same id, same token): a cached aal1
            # copy would send the user to step-up forever. Ask again before denying.
            # A remembered 401 is no such copy: a login brings a new cookie or token.
            result, _ = yield whoami_fetch(config, credentials, refresh=True)
            decision = _decide_result(config, result, requirement, return_to, now())
        if decision.outcome is Outcome.STEP_UP and result.step_up_to is None:
            assert decision.session is not None
            has_second_factor = yield from _second_factor_plan(
                config, credentials, decision.session
            )
            if not has_second_factor:
                decision = decide(
                    decision.session,
                    requirement,
                    now=now(),
                    return_to=return_to,
                    config=config,
                    has_second_factor=False,
                )
    except KratosUnavailable as error:
        return unavailable(error, requirement)
    return decision


def _decide_result(
    config: KratosConfig,
    result: WhoamiResult,
    requirement: Requirement,
    return_to: ReturnTo,
    now: datetime,
) -> Decision:
    if result.step_up_to is not None:
        target = rebase(config, result.step_up_to, _resolve(return_to))
        return Decision(Outcome.STEP_UP, None, target, requirement=requirement)
    return decide(result.session, requirement, now=now, return_to=return_to, config=config)


def _second_factor_plan(
    config: KratosConfig, credentials: Credentials, session: Session
) -> Generator[Fetch[Any], tuple[Any, bool], bool]:
    ttl = min(config.cache_ttl, SECOND_FACTOR_TTL)
    try:
        # Both answers are cached by identity: without admin_url each probe stores a
        # login flow at Kratos. A cached "no" traps nobody who pairs a device: pairing
        # upgrades the session in place to aal2, and whoami (asked before any denial)
        # then allows; what it teaches (_learn_second_factor) replaces the "no".
        value, _ = yield Fetch(
            key=second_factor_key(session),
            request=lambda: second_factor_request(config, credentials, session),
            parse=lambda response, now: (parse_second_factor(response), ttl),
        )
    except KratosUnavailable:
        # Kratos knows a session exists: step-up is the way forward that can still work.
        return True
    return bool(value)
