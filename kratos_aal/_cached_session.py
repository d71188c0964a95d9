"""A cached whoami answer as the cache hit path reads it.

A hit allows only: anything else goes the whole way (the plans in ``_core``), which asks
Kratos again before denying.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ._config import KratosConfig
from ._decision import Decision, Outcome, Requirement, decide
from ._models import Session


def allowed_from_cache(
    config: KratosConfig, cached: Any, requirement: Requirement, now: datetime
) -> Decision | None:
    """Return ``ALLOW`` when a cached whoami answer meets *requirement*, else ``None``.

    The short way for the common case: only an allowing decision is taken from the cache;
    anything else goes the whole way, which asks Kratos again before denying.
    """
    session = getattr(cached, "session", None)
    if session is None:
        return None
    decision = decide(session, requirement, now=now, return_to=None, config=config)
    return decision if decision.outcome is Outcome.ALLOW else None


class CachedSession:
    """What a cache hit needs of a cached whoami answer, worked out once when it is stored.

    ``rank`` is the session's AAL rank where :func:`decide` could allow it at all (active,
    identity active, a first factor on record), else -1; ``expires`` its ``expires_at`` as
    POSIX seconds. ``extra`` is for an integration's own per-session objects.
    """

    __slots__ = ("decision", "expires", "extra", "rank", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        usable = (
            session.active
            and (session.identity is None or session.identity.state in (None, "active"))
            and session.aal.rank >= 1
        )
        self.rank = session.aal.rank if usable else -1
        expires_at = session.expires_at
        self.expires = math.inf if expires_at is None else expires_at.timestamp()
        self.decision: Decision | None = None
        self.extra: Any = None

    def allowed(self, requirement: Requirement) -> Decision:
        """Return the ``ALLOW`` decision for *requirement* (the last one made is reused)."""
        decision = self.decision
        if decision is None or decision.requirement is not requirement:
            decision = self.decision = Decision(
                Outcome.ALLOW, self.session, None, None, requirement
            )
        return decision


def cached_session(value: Any) -> CachedSession | None:
    """Return the hit path's view of a cached whoami answer (``None``: not a session)."""
    session = getattr(value, "session", None)
    return CachedSession(session) if isinstance(session, Session) else None
