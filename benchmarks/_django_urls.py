"""URLconf and auth backend of the Django benchmark (its peer row needs no database)."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []


class _User:
    """A user that needs no database: what the peer row's backend returns."""

    pk = id = 1
    is_authenticated = True
    is_active = True
    is_anonymous = False


class NoDatabaseBackend:
    """An authentication backend that returns :class:`_User` for id 1, without a query."""

    def get_user(self, user_id: Any) -> Any:
        return _User() if str(user_id) == "1" else None


def signed_session_cookie() -> str:
    """Return a ``sessionid`` cookie of the signed-cookie engine holding user 1."""
    from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = "1"
    store[BACKEND_SESSION_KEY] = f"{__name__}.NoDatabaseBackend"
    store.save()
    return f"sessionid={store.session_key}"
