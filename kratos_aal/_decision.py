"""The AAL decision: what a route requires, and what to do with one request (SPEC §3).

Pure: :func:`decide` reads a session Kratos showed and a :class:`Requirement` and returns
a :class:`Decision`. Asking Kratos is the plans' part (``_core``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import NamedTuple

from ._config import KratosConfig
from ._kratos_api import login_url, settings_url
from ._models import AAL, AALLike, Session
from .exceptions import ConfigurationError, KratosUnavailable

__all__ = ["Decision", "Outcome", "Requirement", "decide"]

#: Seconds a 503 asks clients to wait when Kratos gave no Retry-After of its own.
DEFAULT_RETRY_AFTER = 5


class Outcome(str, Enum):
    """What to do with a request; see :class:`Decision`."""

    ALLOW = "allow"
    LOGIN = "login"
    STEP_UP = "step_up"
    ENROLL = "enroll"
    REAUTHENTICATE = "reauthenticate"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a route demands of a session.

    Args:
        aal: The least AAL, ``"aal1"`` or ``"aal2"``.
        max_age: Seconds (or a ``timedelta``) since the newest method of at least *aal*
            was completed (with *methods*, the newest of a listed method); older
            sessions must re-authenticate.
        methods: Method names of which at least one must be among the session's methods
            of at least *aal*, e.g. ``{"webauthn", "passkey"}``.

    Raises:
        ConfigurationError: a value is wrong.
    """

    aal: AAL = AAL.AAL2
    max_age: float | None = None
    methods: frozenset[str] | None = None
    #: The rank a cached session needs for the hit path; 99 (never met) with max_age or
    #: methods, which only the full decision can judge.
    hit_rank: int = field(default=99, init=False, repr=False, compare=False)

    def __init__(
        self,
        aal: AALLike = AAL.AAL2,
        max_age: float | timedelta | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        level = AAL.parse(aal, setting="Requirement.aal")
        if level not in (AAL.AAL1, AAL.AAL2):
            raise ConfigurationError(
                f"Requirement.aal must be 'aal1' or 'aal2' (Kratos issues no other), got {aal!r}"
            )
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age > 0
        ):
            raise ConfigurationError(
                f"Requirement.max_age must be more than 0 seconds, got {max_age!r}"
            )
        if methods is not None:
            if isinstance(methods, str) or not all(isinstance(m, str) and m for m in methods):
                raise ConfigurationError(
                    f"Requirement.methods must be a set of method names, got {methods!r}"
                )
            if not methods:
                raise ConfigurationError("Requirement.methods must name at least one method")
        object.__setattr__(self, "aal", level)
        object.__setattr__(self, "max_age", None if max_age is None else float(max_age))
        object.__setattr__(self, "methods", None if methods is None else frozenset(methods))
        simple = max_age is None and methods is None
        object.__setattr__(self, "hit_rank", level.rank if simple else 99)

    @classmethod
    def parse(cls, value: RequirementLike, *, setting: str = "requirement") -> Requirement:
        """Return *value* as a Requirement (an AAL string is accepted).

        Raises:
            ConfigurationError: *value* is neither; the message names *setting*.
        """
        if isinstance(value, Requirement):
            return value
        if isinstance(value, (str, AAL)):
            try:
                return cls(value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{setting}: {exc}") from None
        raise ConfigurationError(
            f"{setting} must be 'aal1', 'aal2' or a Requirement(...), got {value!r}"
        )


RequirementLike = Requirement | AAL | str


class Decision(NamedTuple):
    """The verdict for one request (immutable).

    A named tuple, so that making one costs next to nothing on every request.

    Attributes:
        outcome: What to do.
        session: The session when Kratos showed one, else ``None``.
        redirect_to: Where to send the browser (under ``browser_url``), else ``None``.
        retry_after: Seconds for ``Retry-After`` when the outcome is ``UNAVAILABLE``.
        requirement: The requirement this decision was made for.
        cause: For ``UNAVAILABLE``: ``"connect"`` (Kratos could not be reached),
            ``"timeout"`` (it did not answer in time), ``"busy"`` (this process had
            ``max_concurrent_checks`` calls under way already) or ``None`` (it answered
            oddly).
    """

    outcome: Outcome
    session: Session | None = None
    redirect_to: str | None = None
    retry_after: int | None = None
    requirement: Requirement | None = None
    cause: str | None = None

    @property
    def allowed(self) -> bool:
        """Return whether the request may proceed."""
        return self.outcome is Outcome.ALLOW


def _newest_completion(
    session: Session, level: AAL, methods: frozenset[str] | None
) -> datetime | None:
    times = [
        m.completed_at
        for m in session.authentication_methods
        if m.aal >= level
        and m.completed_at is not None
        and (methods is None or m.method in methods)
    ]
    return max(times) if times else None


ReturnTo = str | Callable[[], str | None] | None


def _resolve(return_to: ReturnTo) -> str | None:
    return return_to() if callable(return_to) else return_to


def _once(return_to: ReturnTo) -> ReturnTo:
    """Compute a lazy *return_to* at most once: only denials need it."""
    if not callable(return_to):
        return return_to
    cell: list[str | None] = []

    def resolve() -> str | None:
        if not cell:
            cell.append(return_to())
        return cell[0]

    return resolve


def decide(
    session: Session | None,
    requirement: Requirement,
    *,
    now: datetime,
    return_to: ReturnTo,
    config: KratosConfig,
    has_second_factor: bool = True,
) -> Decision:
    """Decide one request from the session Kratos showed (SPEC §3); pure.

    *return_to* may be a callable: it is called only for a denial (allowing a request
    never builds URLs). *has_second_factor* matters only when the session's AAL is below
    the requirement.
    """
    if session is None or not session.is_active(now):
        target = login_url(config, _resolve(return_to))
        return Decision(Outcome.LOGIN, None, target, requirement=requirement)
    level = requirement.aal
    have = session.aal.rank
    if have < 1:
        # No first factor on record (e.g. identifier_first only): Kratos would call a plain
        # login "already logged in", so ask it to log in afresh.
        target = login_url(config, _resolve(return_to), refresh="true")
        return Decision(Outcome.LOGIN, session, target, requirement=requirement)
    if have < level.rank:
        if has_second_factor:
            target = login_url(config, _resolve(return_to), aal=level.value)
            return Decision(Outcome.STEP_UP, session, target, requirement=requirement)
        target = settings_url(config, _resolve(return_to))
        return Decision(Outcome.ENROLL, session, target, requirement=requirement)
    stale = False
    if requirement.max_age is not None:
        # With methods too, the clock runs from the newest use of a listed method: a TOTP
        # code a minute ago does not make a two-hour-old WebAuthn login fresh (SPEC §2).
        newest = _newest_completion(session, level, requirement.methods)
        stale = newest is None or (now - newest).total_seconds() > requirement.max_age
    if requirement.methods is not None and not stale:
        used = {m.method for m in session.authentication_methods if m.aal >= level}
        stale = used.isdisjoint(requirement.methods)
    if stale:
        target = login_url(config, _resolve(return_to), aal=level.value, refresh="true")
        return Decision(Outcome.REAUTHENTICATE, session, target, requirement=requirement)
    return Decision(Outcome.ALLOW, session, requirement=requirement)


def unavailable(error: KratosUnavailable, requirement: Requirement | None) -> Decision:
    """Return the 503 decision for *error*."""
    return Decision(
        Outcome.UNAVAILABLE,
        retry_after=error.retry_after or DEFAULT_RETRY_AFTER,
        requirement=requirement,
        cause=error.cause,
    )
