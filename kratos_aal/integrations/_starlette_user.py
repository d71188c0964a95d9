"""``request.user`` and ``request.auth`` of a request with a Kratos session (Starlette)."""

from __future__ import annotations

from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import Scope

from .._models import AAL, Session
from ._asgi import _SESSION_KEY


class KratosUser(BaseUser):
    """``request.user`` for a request with a Kratos session (shared, so immutable)."""

    session: Session

    def __init__(self, session: Session) -> None:
        object.__setattr__(self, "session", session)

    def __setattr__(self, name: str, value: object) -> None:
        # One KratosUser serves every request of a cached session: none may change it.
        raise AttributeError("KratosUser is shared by requests: it cannot be changed")

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        identity = self.session.identity
        if identity is None:
            return ""
        for trait in ("email", "username", "name"):
            value = identity.traits.get(trait)
            if isinstance(value, str):
                return value
        return identity.id

    @property
    def identity(self) -> str:
        return self.session.identity.id if self.session.identity else ""


class _SharedAuth(AuthCredentials):
    """``request.auth``: made once per AAL and shared by every request, so immutable."""

    def __init__(self, scopes: tuple[str, ...]) -> None:
        # A tuple where Starlette has a list: no request can change what later ones see.
        object.__setattr__(self, "scopes", scopes)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("request.auth is shared by requests: it cannot be changed")


_AUTH = {
    level: _SharedAuth(
        ("authenticated", *(other.value for other in AAL if AAL.AAL1 <= other <= level))
    )
    for level in AAL
}


def _attach(scope: Scope, session: Session | None) -> None:
    scope.setdefault("state", {})[_SESSION_KEY] = session
    if session is not None:
        scope["auth"] = _AUTH[session.aal]
        scope["user"] = KratosUser(session)
