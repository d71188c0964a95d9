"""The ideal minimal guards kratos-aal's hit path is measured against.

Each does only what a cache hit cannot do without: one pass over the raw headers, cut
the Kratos cookie, a keyed blake2b, one dict lookup, compare a float expiry and an int
AAL rank, attach the session. No rules, no fallbacks, no hostile-input care, no
observability: a floor, not a product. A miss is simply a 401.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

_COOKIE = b"ory_kratos_session="
_COOKIE_TEXT = _COOKIE.decode()


class IdealStore:
    """Cached sessions by keyed hash: ``(expires, rank, session)``."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(key=secrets.token_bytes(16), digest_size=16)
        self.entries: dict[bytes, tuple[float, int, Any]] = {}

    def add(self, cookie: str, session: Any, ttl: float = 3600.0) -> None:
        self.entries[self.key(cookie.encode())] = (time.time() + ttl, session.aal.rank, session)

    def key(self, value: bytes) -> bytes:
        hasher = self._hash.copy()
        hasher.update(value)
        return hasher.digest()

    def lookup(self, value: bytes, rank: int) -> Any:
        entry = self.entries.get(self.key(value))
        if entry is not None and entry[0] > time.time() and entry[1] >= rank:
            return entry[2]
        return None


def _cut(header: bytes) -> bytes | None:
    start = header.find(_COOKIE)
    if start < 0:
        return None
    start += len(_COOKIE)
    end = header.find(b";", start)
    return header[start:] if end < 0 else header[start:end]


def _cut_text(header: str) -> bytes | None:
    start = header.find(_COOKIE_TEXT)
    if start < 0:
        return None
    start += len(_COOKIE_TEXT)
    end = header.find(";", start)
    return (header[start:] if end < 0 else header[start:end]).encode()


class IdealASGI:
    """An ASGI middleware that allows aal2 sessions found in *store*."""

    def __init__(self, app: Any, store: IdealStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            session = None
            for name, value in scope["headers"]:
                if name == b"cookie":
                    cookie = _cut(value)
                    if cookie is not None:
                        session = self.store.lookup(cookie, 2)
                        break
            if session is None:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope["kratos_session"] = session
        await self.app(scope, receive, send)


class IdealWSGI:
    """A WSGI middleware that allows aal2 sessions found in *store*."""

    def __init__(self, app: Any, store: IdealStore) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        cookie = _cut_text(environ.get("HTTP_COOKIE", ""))
        session = None if cookie is None else self.store.lookup(cookie, 2)
        if session is None:
            start_response("401 Unauthorized", [])
            return [b""]
        environ["kratos_session"] = session
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def ideal_django(view: Callable[..., Any], store: IdealStore) -> Callable[..., Any]:
    """Wrap a Django view: allow aal2 sessions found in *store*, else 401."""
    from django.http import HttpResponse

    @functools.wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        cookie = _cut_text(request.META.get("HTTP_COOKIE", ""))
        session = None if cookie is None else store.lookup(cookie, 2)
        if session is None:
            return HttpResponse(status=401)
        request.kratos_session = session
        return view(request, *args, **kwargs)

    return wrapper


def ideal_flask(view: Callable[..., Any], store: IdealStore) -> Callable[..., Any]:
    """Wrap a Flask view: allow aal2 sessions found in *store*, else 401."""
    from flask import g, request

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cookie = _cut_text(request.environ.get("HTTP_COOKIE", ""))
        session = None if cookie is None else store.lookup(cookie, 2)
        if session is None:
            return "", 401
        g.kratos_session = session
        return view(*args, **kwargs)

    return wrapper


def ideal_drf_permission(store: IdealStore) -> type:
    """Return a DRF permission class that allows aal2 sessions found in *store*."""
    from rest_framework.permissions import BasePermission

    class IdealPermission(BasePermission):  # type: ignore[misc]
        def has_permission(self, request: Any, view: Any) -> bool:
            cookie = _cut_text(request._request.META.get("HTTP_COOKIE", ""))
            session = None if cookie is None else store.lookup(cookie, 2)
            if session is None:
                return False
            request._request.kratos_session = session
            return True

    return IdealPermission


class IdealUser:
    """What an ideal DRF authentication returns as ``request.user``."""

    is_authenticated = True

    def __init__(self, session: Any) -> None:
        self.session = session


def ideal_drf_authentication(store: IdealStore) -> tuple[type, type]:
    """Return a DRF authentication class that finds sessions in *store*, and a permission.

    The permission allows when the authenticated session is aal2: the lookup is made once
    per request, by the authentication.
    """
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.permissions import BasePermission

    class IdealAuthentication(BaseAuthentication):  # type: ignore[misc]
        def authenticate(self, request: Any) -> tuple[IdealUser, Any] | None:
            cookie = _cut_text(request._request.META.get("HTTP_COOKIE", ""))
            session = None if cookie is None else store.lookup(cookie, 1)
            if session is None:
                return None
            request._request.kratos_session = session
            return IdealUser(session), session

    class IdealAAL2(BasePermission):  # type: ignore[misc]
        def has_permission(self, request: Any, view: Any) -> bool:
            return request.auth is not None and request.auth.aal.rank >= 2

    return IdealAuthentication, IdealAAL2
